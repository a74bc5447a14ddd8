//! Decoding with limits, orientation, and the re-encoded copies the library stores.
//!
//! Every image is decoded and written out again from its pixels (docs/adr/0013): the stored
//! original carries nothing of the upload but its pixels (no EXIF, XMP, ICC or comments, no
//! bytes after the image), and a file that does not decode as the type its magic bytes claim
//! is refused. The orientation tag is applied to the pixels first, because re-encoding drops
//! it. Decoding is bounded before it starts: the declared size against
//! `VANTUS_MEDIA_MAX_PIXELS`, and the decoder's allocations against [`image::Limits`], so a
//! decompression bomb is refused, never allocated.
//!
//! All of this is CPU work: callers run it through [`run_blocking`], which keeps it off the
//! async runtime on one thread of its own, one job at a time (a 24-megapixel photo takes
//! ~70 MB decoded).

use std::io::Cursor;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::metadata::Orientation;
use image::{AnimationDecoder, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use super::sniff::{self, Kind, NotAccepted};

/// JPEG quality of the re-encoded original: visually lossless for photos.
const JPEG_QUALITY: u8 = 90;
/// Longest side an image may have, whatever its pixel count (a 1×50 000 000 strip is a bomb
/// for every resizer).
const MAX_SIDE: u32 = 20_000;
/// Most frames of an animated GIF kept.
const MAX_GIF_FRAMES: usize = 500;
/// The widths of the responsive variants (WebP); only those narrower than the original.
pub const VARIANT_WIDTHS: &[u32] = &[320, 640, 960, 1280, 1920];

/// How far decoding may go.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_pixels: u64,
}

impl Limits {
    fn decoder_limits(self) -> image::Limits {
        let mut l = image::Limits::default();
        // The decoded image (RGBA at 8 bits, or 16-bit RGB) plus the decoder's own buffers.
        l.max_alloc = Some(self.max_pixels.saturating_mul(8).saturating_add(64 << 20));
        l
    }
}

/// Why an upload is refused: the client's file, never the server (a 422 naming `file`).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Type(#[from] NotAccepted),
    #[error(
        "the image is {width}×{height} pixels; at most {max} pixels (and {MAX_SIDE} on a side) are accepted"
    )]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("the image needs more memory to decode than is allowed (a decompression bomb?)")]
    Bomb,
    #[error("the file starts like a {} but is not a valid {} ({why})", .kind.name(), .kind.name())]
    Undecodable { kind: Kind, why: String },
    #[error("the file holds data after the end of its {} image (a disguised second file?)", .0.name())]
    TrailingData(Kind),
    #[error("the PDF is incomplete (no %%EOF at its end)")]
    IncompletePdf,
}

/// What is stored for an upload.
#[derive(Debug)]
pub struct Processed {
    pub kind: Kind,
    pub bytes: Vec<u8>,
    /// Pixel size after orientation (images only).
    pub size: Option<(u32, u32)>,
}

/// A responsive variant: a narrower WebP copy.
#[derive(Debug)]
pub struct Variant {
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// Checks and cleans an upload: its type from magic bytes, then (images) decoded within
/// `limits`, turned upright and re-encoded with no metadata; PDFs are checked and kept as sent.
pub fn ingest(bytes: &[u8], limits: Limits) -> Result<Processed, Refused> {
    let kind = sniff::sniff(bytes)?;
    if kind == Kind::Pdf {
        if !sniff::pdf_is_complete(bytes) {
            return Err(Refused::IncompletePdf);
        }
        return Ok(Processed {
            kind,
            bytes: bytes.to_vec(),
            size: None,
        });
    }
    if sniff::has_trailing_data(kind, bytes) {
        return Err(Refused::TrailingData(kind));
    }
    if kind == Kind::Gif {
        return reencode_gif(bytes, limits);
    }
    let image = decode_upright(bytes, kind, limits)?;
    let size = (image.width(), image.height());
    let bytes = encode(&image, kind).map_err(|e| undecodable(kind, e))?;
    Ok(Processed {
        kind,
        bytes,
        size: Some(size),
    })
}

/// The variants of a stored (already clean) image, widest first, each from the one before.
pub fn variants(stored: &[u8], kind: Kind, limits: Limits) -> Result<Vec<Variant>, Refused> {
    let image = decode_upright(stored, kind, limits)?;
    let (w, h) = (image.width(), image.height());
    let mut out = Vec::new();
    let mut source = image;
    for &width in VARIANT_WIDTHS.iter().rev().filter(|&&vw| vw < w) {
        let height = ((u64::from(h) * u64::from(width)) / u64::from(w)).max(1) as u32;
        // `thumbnail` averages whole areas with integers: fast, and no float copy of a
        // 24-megapixel image (which `resize` makes).
        let small = source.thumbnail_exact(width, height);
        let bytes = encode_webp(&small).map_err(|e| undecodable(kind, e))?;
        out.push(Variant {
            width,
            height,
            bytes,
        });
        source = small;
    }
    Ok(out)
}

fn undecodable(kind: Kind, e: ImageError) -> Refused {
    match e {
        ImageError::Limits(_) => Refused::Bomb,
        other => Refused::Undecodable {
            kind,
            why: other.to_string(),
        },
    }
}

fn format_of(kind: Kind) -> ImageFormat {
    match kind {
        Kind::Jpeg => ImageFormat::Jpeg,
        Kind::Png => ImageFormat::Png,
        Kind::WebP => ImageFormat::WebP,
        Kind::Gif => ImageFormat::Gif,
        Kind::Pdf => unreachable!("a PDF is not decoded"),
    }
}

fn check_size(width: u32, height: u32, limits: Limits) -> Result<(), Refused> {
    if width == 0 || height == 0 {
        return Err(Refused::Undecodable {
            kind: Kind::Png,
            why: "it has no pixels".into(),
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels
        || width > MAX_SIDE
        || height > MAX_SIDE
    {
        return Err(Refused::TooLarge {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    Ok(())
}

/// Decodes within `limits` and applies the orientation tag.
fn decode_upright(bytes: &[u8], kind: Kind, limits: Limits) -> Result<DynamicImage, Refused> {
    // The header alone first, so a refusal can name the declared size (the decoder's own
    // limit check would only say "too much memory").
    // Reading a header allocates nothing that depends on the declared size.
    let mut header = ImageReader::with_format(Cursor::new(bytes), format_of(kind));
    header.no_limits();
    let (width, height) = header.into_dimensions().map_err(|e| undecodable(kind, e))?;
    check_size(width, height, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format_of(kind));
    reader.limits(limits.decoder_limits());
    let mut decoder = reader.into_decoder().map_err(|e| undecodable(kind, e))?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    // A broken orientation tag is no reason to refuse the picture: keep it as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| undecodable(kind, e))?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Writes `image` as `kind` with no metadata at all.
fn encode(image: &DynamicImage, kind: Kind) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    match kind {
        Kind::Jpeg => {
            let converted;
            let (pixels, color) = match image {
                DynamicImage::ImageRgb8(rgb) => (rgb.as_raw(), jpeg_encoder::ColorType::Rgb),
                DynamicImage::ImageLuma8(luma) => (luma.as_raw(), jpeg_encoder::ColorType::Luma),
                other => {
                    converted = other.to_rgb8();
                    (converted.as_raw(), jpeg_encoder::ColorType::Rgb)
                }
            };
            // Sides are at most MAX_SIDE (20,000), within the format's 65,535.
            let (Ok(width), Ok(height)) =
                (u16::try_from(image.width()), u16::try_from(image.height()))
            else {
                return Err(jpeg_error("the image is too large for JPEG"));
            };
            jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY)
                .encode(pixels, width, height, color)
                .map_err(|e| jpeg_error(&e.to_string()))?;
        }
        Kind::Png => {
            let encoder = PngEncoder::new(&mut out);
            match image {
                DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => {
                    DynamicImage::ImageRgba16(image.to_rgba16()).write_with_encoder(encoder)?
                }
                _ => image.write_with_encoder(encoder)?,
            }
        }
        Kind::WebP | Kind::Gif => return encode_webp(image),
        Kind::Pdf => unreachable!("a PDF is not encoded"),
    }
    Ok(out)
}

fn jpeg_error(why: &str) -> ImageError {
    ImageError::Encoding(image::error::EncodingError::new(
        image::error::ImageFormatHint::Exact(ImageFormat::Jpeg),
        why.to_owned(),
    ))
}

/// Lossless WebP (the only WebP encoder in pure Rust; see docs/adr/0013).
fn encode_webp(image: &DynamicImage) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    let encoder = WebPEncoder::new_lossless(&mut out);
    match image {
        DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_)
        | DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_) => image.write_with_encoder(encoder)?,
        other if other.color().has_alpha() => {
            DynamicImage::ImageRgba8(other.to_rgba8()).write_with_encoder(encoder)?
        }
        other => DynamicImage::ImageRgb8(other.to_rgb8()).write_with_encoder(encoder)?,
    }
    Ok(out)
}

/// A GIF frame by frame (animation kept, comments and application extensions such as XMP
/// dropped), holding one frame at a time.
fn reencode_gif(bytes: &[u8], limits: Limits) -> Result<Processed, Refused> {
    let kind = Kind::Gif;
    let mut decoder = GifDecoder::new(Cursor::new(bytes)).map_err(|e| undecodable(kind, e))?;
    decoder
        .set_limits(limits.decoder_limits())
        .map_err(|e| undecodable(kind, e))?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .map_err(|e| undecodable(kind, e))?;
        let mut frames = 0usize;
        for frame in decoder.into_frames() {
            frames += 1;
            if frames > MAX_GIF_FRAMES {
                return Err(Refused::TooLarge {
                    width,
                    height,
                    max: limits.max_pixels,
                });
            }
            let frame = frame.map_err(|e| undecodable(kind, e))?;
            encoder
                .encode_frame(frame)
                .map_err(|e| undecodable(kind, e))?;
        }
        if frames == 0 {
            return Err(Refused::Undecodable {
                kind,
                why: "it has no frames".into(),
            });
        }
    }
    Ok(Processed {
        kind,
        bytes: out,
        size: Some((width, height)),
    })
}

/// A job for the processing thread.
type Job = Box<dyn FnOnce() + Send>;

/// The one thread that decodes and encodes, started on first use. One job at a time: decoding
/// is CPU-bound and holds the whole picture in memory, so two at once would double the peak
/// (the bench target is 300 MB for a 24-megapixel photo). One thread rather than the blocking
/// pool also keeps every large buffer in one allocator arena: on the pool each job's thread
/// kept its own freed copy, and a 24-megapixel photo peaked at 350 MB.
fn processing_thread() -> Option<&'static std::sync::mpsc::Sender<Job>> {
    static SENDER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name("media-processing".into())
                .spawn(move || {
                    for job in rx {
                        job();
                        release_freed_memory();
                    }
                });
            match spawned {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the media processing thread");
                    None
                }
            }
        })
        .as_ref()
}

/// Hands the pages a finished job freed back to the system, so the next job's peak does not
/// stack on the last one's leftovers.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim only returns free memory; it takes no pointers.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Runs `work` on the processing thread, after the jobs before it. `None` when it panicked (a
/// decoder bug met by a crafted file): the caller refuses the file rather than failing the
/// server, and the thread goes on with the next job.
pub async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if let Ok(done) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
            let _ = tx.send(done);
        }
    });
    processing_thread()?.send(job).ok()?;
    rx.await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_pixels: 50_000_000,
    };

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            width,
            height,
            image::Rgb([200, 10, 10]),
        ));
        let mut out = Vec::new();
        img.write_with_encoder(PngEncoder::new(&mut out)).unwrap();
        out
    }

    #[test]
    fn a_png_is_reencoded_and_variants_are_narrower() {
        let p = ingest(&png(1000, 500), LIMITS).unwrap();
        assert_eq!(p.size, Some((1000, 500)));
        assert_eq!(p.kind, Kind::Png);
        let v = variants(&p.bytes, p.kind, LIMITS).unwrap();
        let widths: Vec<u32> = v.iter().map(|v| v.width).collect();
        assert_eq!(widths, vec![960, 640, 320]);
        assert_eq!(v[2].height, 160);
        assert!(v[0].bytes.starts_with(b"RIFF"));
    }

    #[test]
    fn a_declared_giant_is_refused_before_decoding() {
        let mut bomb = png(1, 1);
        // IHDR's width and height sit at bytes 16..24; the CRC no longer matches, which the
        // decoder may notice first: either way it is refused without allocating.
        bomb[16..20].copy_from_slice(&50_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&50_000u32.to_be_bytes());
        assert!(ingest(&bomb, LIMITS).is_err());
    }

    #[test]
    fn a_jpeg_that_does_not_decode_is_refused() {
        let fake = b"\xFF\xD8\xFF\xE0<html><script>alert(1)</script></html>";
        assert!(matches!(
            ingest(fake, LIMITS),
            Err(Refused::Undecodable {
                kind: Kind::Jpeg,
                ..
            })
        ));
    }
}
