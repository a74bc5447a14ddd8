//! The media library: uploads are sniffed, size- and pixel-limited, turned upright and
//! stripped of every metadata block in every stored copy; variants come from the background
//! job; files are served with the right headers to the right people; backups carry them.
//! The storage tests run against the local folder and against moto's S3 emulator (the
//! S3-compatible server the test runner can start here).

use std::collections::HashMap;
use std::time::Duration;

use image::{DynamicImage, GenericImageView, ImageEncoder, Rgb, RgbImage};
use vantus::auth::permission::Role;

use crate::both_engines;
use crate::support::sinks::S3Emulator;
use crate::support::staff::{Signed, account, audit_count, cheap_hashing, new_tenant, sign_in_as};
use crate::support::wait::eventually;
use crate::support::{Engine, TestApp, TestDb, base_env, read_manifest, run_binary};

const EDITOR: &str = "editor@example.com";
const SALES: &str = "sales@example.com";
const BUCKET: &str = "vantus-media";
/// A string hidden in the test photo's EXIF block: no stored or served copy may hold it.
const SECRET: &[u8] = b"GPS-SECRET-PLACE";

/// Where the media goes in a test.
enum Storage<'a> {
    Local,
    S3(&'a S3Emulator),
}

async fn spawn(engine: Engine, storage: Storage<'_>, extra: &[(&str, &str)]) -> TestApp {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let s3_env = match storage {
        Storage::Local => Vec::new(),
        Storage::S3(s3) => {
            s3.create_bucket(BUCKET).await;
            media_bucket_env(s3, BUCKET)
        }
    };
    let app = TestApp::spawn_with(engine, move |env| {
        cheap_hashing(env);
        env.extend(s3_env);
        env.extend(extra);
    })
    .await;
    let site = app.server().app.site.clone();
    account(&app, EDITOR, "Eddie Editor", &site, Role::Editor).await;
    account(&app, SALES, "Sam Sales", &site, Role::Sales).await;
    app
}

// ---------------------------------------------------------------------------------------
// Test files, made here.

/// A JPEG `w`×`h`, left half red and right half blue, carrying an APP1 EXIF block with an
/// orientation tag (6: the camera was turned, show it rotated 90° clockwise), a GPS IFD and
/// [`SECRET`] as its image description.
fn photo_with_exif(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            Rgb([220, 20, 20])
        } else {
            Rgb([20, 20, 220])
        }
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    let exif = exif_block();
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    app1.extend_from_slice(&exif);
    // Right after SOI, where cameras put it.
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// `Exif\0\0` and a little-endian TIFF: IFD0 (orientation 6, image description, GPS
/// pointer) and a GPS IFD (latitude N 52°).
fn exif_block() -> Vec<u8> {
    let mut t: Vec<u8> = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, ty: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&ty.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    // IFD0 at 8: 3 entries (2 + 3×12 + 4 = 42 bytes), then the description at 50, the GPS
    // IFD at 50 + len, then its rational.
    let desc_at = 8 + 2 + 3 * 12 + 4;
    let desc = [SECRET, b"\0"].concat();
    let gps_at = desc_at + desc.len() as u32;
    t.extend_from_slice(&3u16.to_le_bytes());
    entry(&mut t, 0x010E, 2, desc.len() as u32, desc_at); // ImageDescription
    entry(&mut t, 0x0112, 3, 1, 6); // Orientation = 6
    entry(&mut t, 0x8825, 4, 1, gps_at); // GPS IFD pointer
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&desc);
    // GPS IFD: 2 entries, then the latitude's three rationals.
    let rational_at = gps_at + 2 + 2 * 12 + 4;
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, u32::from_le_bytes([b'N', 0, 0, 0])); // GPSLatitudeRef
    entry(&mut t, 0x0002, 5, 3, rational_at); // GPSLatitude
    t.extend_from_slice(&0u32.to_le_bytes());
    for (num, den) in [(52u32, 1u32), (31, 1), (0, 1)] {
        t.extend_from_slice(&num.to_le_bytes());
        t.extend_from_slice(&den.to_le_bytes());
    }
    [b"Exif\0\0".as_slice(), &t].concat()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, Rgb([1, 2, 3])));
    let mut out = Vec::new();
    img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .unwrap();
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    c.extend_from_slice(&crc32(&[kind.as_slice(), data].concat()).to_be_bytes());
    c
}

/// A well-formed PNG header declaring 50 000 × 50 000 RGBA pixels (10 GB decoded) over a
/// few hundred bytes: a decompression bomb.
fn png_bomb() -> Vec<u8> {
    let mut ihdr = 50_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    // The start of a zlib stream of zeros; never read that far.
    out.extend(png_chunk(b"IDAT", &[0x78, 0x9C, 0x63, 0x00, 0x00]));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

// ---------------------------------------------------------------------------------------
// Requests.

/// A multipart body as a browser sends the upload form: token first.
fn multipart(
    token: &str,
    file: Option<(&str, &[u8])>,
    alt: &str,
    visibility: &str,
) -> (String, Vec<u8>) {
    let boundary = "----vantus-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    let mut text = |name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    text("csrf_token", token);
    text("alt_text", alt);
    text("visibility", visibility);
    if let Some((name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload_as(
    app: &TestApp,
    who: &Signed,
    name: &str,
    bytes: &[u8],
    alt: &str,
    visibility: &str,
) -> reqwest::Response {
    let (content_type, body) = multipart(&who.token, Some((name, bytes)), alt, visibility);
    app.request(reqwest::Method::POST, "/admin/media")
        .header("cookie", &who.cookie)
        .header("content-type", content_type)
        .header("accept", "text/html")
        .body(body)
        .await
}

/// Uploads and returns the new file's id (from the redirect).
async fn upload_ok(
    app: &TestApp,
    who: &Signed,
    name: &str,
    bytes: &[u8],
    alt: &str,
    visibility: &str,
) -> String {
    let res = upload_as(app, who, name, bytes, alt, visibility).await;
    let status = res.status();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let Some(location) = location.filter(|_| status == 303) else {
        panic!("upload of {name}: {status} {}", res.text().await.unwrap());
    };
    location
        .strip_prefix("/admin/media/")
        .and_then(|r| r.split('?').next())
        .unwrap()
        .to_owned()
}

/// The file's page, as `who`.
async fn file_page(app: &TestApp, who: &Signed, id: &str) -> String {
    let res = app
        .get_html(&format!("/admin/media/{id}"))
        .header("cookie", &who.cookie)
        .await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The `/media/...` address on a file's page.
fn file_url(page: &str) -> String {
    let at = page.find("id=\"file-url\">").unwrap() + "id=\"file-url\">".len();
    page[at..].split('<').next().unwrap().to_owned()
}

fn variant_urls(page: &str) -> Vec<String> {
    page.match_indices("href=\"/media/")
        .map(|(i, _)| page[i + 6..].split('"').next().unwrap().to_owned())
        .collect()
}

/// Waits for the background job to have made the file's variants; their addresses.
async fn variants_made(app: &TestApp, who: &Signed, id: &str) -> Vec<String> {
    eventually(Duration::from_secs(60), "the variants job", async || {
        let page = file_page(app, who, id).await;
        if page.contains("id=\"variants-state\">ready<") {
            Ok(variant_urls(&page))
        } else {
            Err("not ready yet")
        }
    })
    .await
}

async fn refused(res: reqwest::Response, status: u16, says: &str) {
    assert_eq!(res.status(), status, "expected {status} saying {says:?}");
    let text = res.text().await.unwrap();
    assert!(text.contains(says), "expected {says:?} in: {text}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// Tests.

/// A photo with EXIF GPS data and an orientation tag: stored and served upright, with no
/// EXIF (nor the secret it held) in the original or any variant; variants come from the job;
/// public files are cached for a year, with an ETag that answers 304.
async fn a_photo_is_stored_upright_and_clean(app: &TestApp) {
    let editor = sign_in_as(app, EDITOR).await;
    let photo = photo_with_exif(1400, 800);
    assert!(contains(&photo, SECRET) && contains(&photo, b"Exif\0\0"));
    let id = upload_ok(
        app,
        &editor,
        "IMG_0001.JPG",
        &photo,
        "Red above blue",
        "public",
    )
    .await;
    assert_eq!(audit_count(app, "media.uploaded").await, 1);

    let page = file_page(app, &editor, &id).await;
    assert!(
        page.contains("IMG_0001.JPG"),
        "the client's name is the label"
    );
    let url = file_url(&page);
    assert!(
        !url.contains("IMG_0001"),
        "the server names the file: {url}"
    );

    let res = app.get(&url).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    let etag = h["etag"].to_str().unwrap().to_owned();
    let served = res.bytes().await.unwrap();
    assert!(!contains(&served, b"Exif"), "no EXIF in the original");
    assert!(!contains(&served, SECRET));
    assert!(!contains(&served, b"http://ns.adobe.com/xap"), "no XMP");
    let decoded = image::load_from_memory(&served).unwrap();
    assert_eq!(decoded.dimensions(), (800, 1400), "turned upright");
    // Orientation 6 turns the picture clockwise: its left half (red) is now on top.
    let top = decoded.get_pixel(400, 100);
    let bottom = decoded.get_pixel(400, 1300);
    assert!(top[0] > 150 && top[2] < 100, "red on top: {top:?}");
    assert!(bottom[2] > 150 && bottom[0] < 100, "blue below: {bottom:?}");

    let again = app.get(&url).header("if-none-match", &etag).await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);

    let variants = variants_made(app, &editor, &id).await;
    assert_eq!(variants.len(), 2, "640 and 320 wide: {variants:?}");
    for v in &variants {
        let res = app.get(v).await;
        assert_eq!(res.status(), 200, "{v}");
        assert_eq!(res.headers()["content-type"], "image/webp");
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let bytes = res.bytes().await.unwrap();
        assert!(
            !contains(&bytes, b"Exif") && !contains(&bytes, SECRET),
            "{v}"
        );
        let img = image::load_from_memory(&bytes).unwrap();
        assert!(
            img.width() == 640 || img.width() == 320,
            "{v}: {}",
            img.width()
        );
        assert!(img.height() > img.width(), "variants are upright too");
    }

    // The Markdown renderer's lookup gives the image its size and variants.
    let server = app.server();
    let body = format!("Intro.\n\n![Red above blue]({url})\n\n![again]({url})");
    let db = server.app.store.primary();
    let catalog = vantus::with_conn!(db, conn =>
        vantus::media::catalog::for_markdown(conn, &server.app.site, &body).await)
    .unwrap();
    let html = vantus::content::markdown::render_with_media(&body, &catalog);
    let html = html.as_str();
    assert!(html.contains("width=\"800\" height=\"1400\""), "{html}");
    assert!(
        html.contains("srcset=\"/media/") && html.contains(" 640w"),
        "{html}"
    );
    assert!(html.contains("loading=\"lazy\""), "{html}");
}

async fn photo_on_the_local_folder(engine: Engine) {
    let app = spawn(engine, Storage::Local, &[]).await;
    a_photo_is_stored_upright_and_clean(&app).await;
    // Every copy in the folder is clean too.
    let dir = app.db.data_dir().join("media");
    let mut files = 0;
    for tenant in std::fs::read_dir(&dir).unwrap() {
        for f in std::fs::read_dir(tenant.unwrap().path()).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            assert!(!contains(&bytes, b"Exif") && !contains(&bytes, SECRET));
            files += 1;
        }
    }
    assert_eq!(files, 3, "the original and two variants");
}

both_engines!(photo_on_the_local_folder);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photo_on_the_s3_emulator() {
    let s3 = S3Emulator::start().await;
    let app = spawn(Engine::Postgres, Storage::S3(&s3), &[]).await;
    a_photo_is_stored_upright_and_clean(&app).await;
    let keys = s3.keys(BUCKET, "").await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    for key in keys {
        let bytes = reqwest::get(format!("{}/{BUCKET}/{key}", s3.endpoint))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(
            !contains(&bytes, b"Exif") && !contains(&bytes, SECRET),
            "{key}"
        );
    }
    assert!(
        !app.db.data_dir().join("media").exists()
            || std::fs::read_dir(app.db.data_dir().join("media"))
                .unwrap()
                .next()
                .is_none(),
        "nothing in the local folder"
    );
}

/// Bombs, polyglots, SVG, unknown types, missing alt text and oversize files are refused
/// with a 4xx that says why, and nothing is stored.
async fn bad_files_are_refused_clearly(app: &TestApp) {
    let editor = sign_in_as(app, EDITOR).await;
    let up = |name: &'static str, bytes: Vec<u8>, alt: &'static str| {
        let editor = &editor;
        async move { upload_as(app, editor, name, &bytes, alt, "public").await }
    };
    refused(up("bomb.png", png_bomb(), "x").await, 422, "50000×50000").await;
    let fake_jpeg =
        b"\xFF\xD8\xFF\xE0<html><script>alert(document.cookie)</script></html>".to_vec();
    refused(up("x.jpg", fake_jpeg, "x").await, 422, "not a valid JPEG").await;
    let mut png_then_html = png(4, 4);
    png_then_html.extend_from_slice(b"<html><script>alert(1)</script></html>");
    refused(
        up("x.png", png_then_html, "x").await,
        422,
        "data after the end",
    )
    .await;
    let mut header_then_html = b"\x89PNG\r\n\x1a\n".to_vec();
    header_then_html
        .extend_from_slice(b"<html><script>alert(1)</script></html>IEND\xAE\x42\x60\x82");
    refused(
        up("x.png", header_then_html, "x").await,
        422,
        "not a valid PNG",
    )
    .await;
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec();
    refused(
        up("x.svg", svg, "x").await,
        422,
        "SVG files are not accepted",
    )
    .await;
    refused(
        up("x.html", b"<!doctype html><p>hi".to_vec(), "x").await,
        422,
        "not accepted",
    )
    .await;
    refused(up("x.png", png(4, 4), "  ").await, 422, "alt: ").await;
    refused(
        up("x.pdf", b"%PDF-1.4\n1 0 obj".to_vec(), "").await,
        422,
        "incomplete",
    )
    .await;
    let big = vec![0xAB; 300 * 1024];
    refused(up("big.png", big, "x").await, 413, "VANTUS_MEDIA_MAX_BYTES").await;
    assert_eq!(audit_count(app, "media.uploaded").await, 0);
    let list = app
        .get_html("/admin/media")
        .header("cookie", &editor.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains("id=\"no-files\""), "nothing was stored");
}

async fn refusals(engine: Engine) {
    let app = spawn(
        engine,
        Storage::Local,
        &[("VANTUS_MEDIA_MAX_BYTES", "256KiB")],
    )
    .await;
    bad_files_are_refused_clearly(&app).await;
    let stored = app.db.data_dir().join("media");
    let any = std::fs::read_dir(&stored)
        .map(|d| {
            d.flat_map(|t| std::fs::read_dir(t.unwrap().path()).unwrap())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(any, 0, "no object was stored");
}

both_engines!(refusals);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_on_the_s3_emulator() {
    let s3 = S3Emulator::start().await;
    let app = spawn(
        Engine::Sqlite,
        Storage::S3(&s3),
        &[("VANTUS_MEDIA_MAX_BYTES", "256KiB")],
    )
    .await;
    bad_files_are_refused_clearly(&app).await;
    assert!(s3.keys(BUCKET, "").await.is_empty());
}

/// Sales may not upload; private files are staff-only and of their own tenant; PDFs are
/// attachments; edits and deletes are audited.
async fn who_sees_what(engine: Engine) {
    let app = spawn(engine, Storage::Local, &[]).await;
    let editor = sign_in_as(&app, EDITOR).await;
    let sales = sign_in_as(&app, SALES).await;
    let res = upload_as(&app, &sales, "a.png", &png(8, 8), "dot", "public").await;
    assert_eq!(res.status(), 403, "sales cannot manage media");
    let list = app
        .get_html("/admin/media")
        .header("cookie", &sales.cookie)
        .await;
    assert_eq!(list.status(), 403);

    let private = upload_ok(
        &app,
        &editor,
        "plan.png",
        &png(8, 8),
        "Floor plan",
        "private",
    )
    .await;
    let url = file_url(&file_page(&app, &editor, &private).await);
    assert_eq!(
        app.get(&url).await.status(),
        404,
        "the public does not see it"
    );
    let res = app.get(&url).header("cookie", &editor.cookie).await;
    assert_eq!(res.status(), 200, "staff who may view content do");
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    let res = app.get(&url).header("cookie", &sales.cookie).await;
    assert_eq!(res.status(), 404, "sales may not view content");

    // Another tenant's staff see nothing of this one.
    let globex = new_tenant(&app, "globex", "Globex").await;
    account(&app, "g@example.com", "G", &globex, Role::Editor).await;
    let outsider = sign_in_as(&app, "g@example.com").await;
    assert_eq!(
        app.get(&url)
            .header("cookie", &outsider.cookie)
            .await
            .status(),
        404
    );
    let res = app
        .get_html(&format!("/admin/media/{private}"))
        .header("cookie", &outsider.cookie)
        .await;
    assert_eq!(res.status(), 404, "nor its page");
    // ...and their own files are not the default tenant's.
    let theirs = upload_ok(&app, &outsider, "g.png", &png(8, 8), "G logo", "public").await;
    let their_url = file_url(&file_page(&app, &outsider, &theirs).await);
    assert_eq!(
        app.get(&their_url).await.status(),
        404,
        "not on this host's public site"
    );

    // A PDF is a sandboxed attachment and needs no alt text.
    let pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
    let doc = upload_ok(&app, &editor, "Price list.pdf", pdf, "", "public").await;
    let res = app
        .get(&file_url(&file_page(&app, &editor, &doc).await))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"Price list.pdf\""
    );
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), pdf, "kept as sent");

    // Editing: alt text is required for images; a change is audited.
    let edit = |id: String, alt: &'static str| {
        let editor = &editor;
        let app = &app;
        async move {
            app.post_form(
                &format!("/admin/media/{id}"),
                &[
                    ("csrf_token", &editor.token),
                    ("alt_text", alt),
                    ("visibility", "public"),
                ],
            )
            .header("cookie", &editor.cookie)
            .await
        }
    };
    refused(edit(private.clone(), "").await, 422, "alt: ").await;
    assert_eq!(
        edit(private.clone(), "Ground floor plan").await.status(),
        303
    );
    assert_eq!(audit_count(&app, "media.updated").await, 1);
    assert_eq!(app.get(&url).await.status(), 200, "public now");
    assert!(
        file_page(&app, &editor, &private)
            .await
            .contains("Ground floor plan")
    );

    // Deleting removes the rows and the objects, audited.
    let res = app
        .post_form(
            &format!("/admin/media/{private}/delete"),
            &[("csrf_token", &editor.token)],
        )
        .header("cookie", &editor.cookie)
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(audit_count(&app, "media.deleted").await, 1);
    assert_eq!(app.get(&url).await.status(), 404);
    let res = app
        .get_html(&format!("/admin/media/{private}"))
        .header("cookie", &editor.cookie)
        .await;
    assert_eq!(res.status(), 404);
    // Deleting from another tenant does nothing.
    let res = app
        .post_form(
            &format!("/admin/media/{doc}/delete"),
            &[("csrf_token", &outsider.token)],
        )
        .header("cookie", &outsider.cookie)
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(audit_count(&app, "media.uploaded").await, 3);
}

both_engines!(who_sees_what);

/// An upload without its form token is refused by the portal's layer, multipart or not.
async fn uploads_need_the_form_token(engine: Engine) {
    let app = spawn(engine, Storage::Local, &[]).await;
    let editor = sign_in_as(&app, EDITOR).await;
    let forged = Signed {
        cookie: editor.cookie.clone(),
        token: "forged".into(),
    };
    refused(
        upload_as(&app, &forged, "a.png", &png(8, 8), "dot", "public").await,
        403,
        "expired",
    )
    .await;
    // An empty token in the body is no token.
    let (ct, body) = multipart("", Some(("a.png", &png(8, 8))), "dot", "public");
    let res = app
        .request(reqwest::Method::POST, "/admin/media")
        .header("cookie", &editor.cookie)
        .header("content-type", ct)
        .body(body)
        .await;
    assert_eq!(res.status(), 403);
    // The header works for scripts.
    let (ct, body) = multipart("", Some(("a.png", &png(8, 8))), "dot", "public");
    let res = app
        .request(reqwest::Method::POST, "/admin/media")
        .header("cookie", &editor.cookie)
        .header("content-type", ct)
        .header("x-csrf-token", &editor.token)
        .body(body)
        .await;
    assert_eq!(res.status(), 303);
}

both_engines!(uploads_need_the_form_token);

/// Variants are made once per image and survive a restart: a claim whose worker died is
/// taken again after its lease, and a second run replaces rather than duplicates.
async fn the_variants_job_is_idempotent(engine: Engine) {
    let app = spawn(engine, Storage::Local, &[]).await;
    let editor = sign_in_as(&app, EDITOR).await;
    let id = upload_ok(&app, &editor, "p.png", &png(700, 400), "flat", "public").await;
    let first = variants_made(&app, &editor, &id).await;
    assert_eq!(first.len(), 2, "{first:?}");
    // Run it again as if the first run had been interrupted before it recorded its end.
    let server = app.server();
    let db = server.app.store.primary();
    vantus::on_db!(db, pool => sqlx::query(
        "UPDATE media SET variants_state = 'pending', variants_lease_until = NULL")
        .execute(pool).await.map(|_| ()))
    .unwrap();
    let limits = vantus::media::limits(&server.app.config);
    vantus::media::variants::drain(db, &server.app.media, limits)
        .await
        .unwrap();
    let again = variants_made(&app, &editor, &id).await;
    assert_eq!(again, first, "the same variants, not twice as many");
}

both_engines!(the_variants_job_is_idempotent);

/// The settings that keep media in `bucket` of the emulator.
fn media_bucket_env(s3: &S3Emulator, bucket: &str) -> Vec<(String, String)> {
    let mut env = s3.env();
    env.push(("S3_BUCKET".into(), bucket.into()));
    env
}

/// A backup carries the media (from the folder or the bucket) and a restore puts it back.
async fn backup_and_restore(storage: Storage<'_>, engine: Engine) {
    let s3 = match &storage {
        Storage::S3(s3) => Some(*s3),
        Storage::Local => None,
    };
    let app = spawn(engine, storage, &[]).await;
    let editor = sign_in_as(&app, EDITOR).await;
    let id = upload_ok(&app, &editor, "p.png", &png(700, 400), "flat", "public").await;
    let variants = variants_made(&app, &editor, &id).await;
    let url = file_url(&file_page(&app, &editor, &id).await);
    let original = app.get(&url).await.bytes().await.unwrap();

    let mut env = base_env(&app.db);
    env.extend(
        s3.map(|s3| media_bucket_env(s3, BUCKET))
            .unwrap_or_default(),
    );
    let backups = tempfile::tempdir().unwrap();
    let o = run_binary(
        &[
            "backup",
            "--to",
            backups.path().to_str().unwrap(),
            "--json",
            "--with-media",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let archive = std::path::PathBuf::from(report["location"].as_str().unwrap());
    assert_eq!(
        read_manifest(&archive).media.len(),
        3,
        "the original and two variants"
    );
    app.stop().await;

    // A new database (and, for S3, a new bucket): everything comes back.
    let target = TestDb::create(engine).await;
    let mut target_env: HashMap<String, String> = base_env(&target);
    if let Some(s3) = s3 {
        s3.create_bucket("vantus-media-restored").await;
        target_env.extend(media_bucket_env(s3, "vantus-media-restored"));
    }
    let o = run_binary(&["restore", archive.to_str().unwrap()], &target_env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if let Some(s3) = s3 {
        assert_eq!(s3.keys("vantus-media-restored", "").await.len(), 3);
    }
    let restored = TestApp::spawn_on(target, move |env| {
        cheap_hashing(env);
        env.extend(target_env.clone());
    })
    .await;
    let res = restored.get(&url).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), original);
    for v in variants {
        assert_eq!(restored.get(&v).await.status(), 200, "{v}");
    }
}

async fn backup_restore_local(engine: Engine) {
    backup_and_restore(Storage::Local, engine).await;
}

both_engines!(backup_restore_local);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_on_the_s3_emulator() {
    let s3 = S3Emulator::start().await;
    backup_and_restore(Storage::S3(&s3), Engine::Postgres).await;
}
