//! `POST /admin/media`: a multipart upload (`csrf_token` first, then `file`, `alt_text`,
//! `visibility`).
//!
//! The body is parsed as a stream with per-field limits, so an upload over
//! `VANTUS_MEDIA_MAX_BYTES` is refused (413) once that many bytes have come, never read whole.
//! Then, before anything is stored: the type from its magic bytes, alt text for an image, and
//! the image decoded within the pixel and memory limits, turned upright and re-encoded
//! without metadata (`crate::media::process`). Only that clean copy is stored, under a name
//! the server makes; the client's file name is kept as a label. The row, the variants job
//! (the row's `pending` state) and the audit entry commit together.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use uuid::Uuid;

use super::handlers::{ALT_REQUIRED, clean_alt, parse_visibility, render_list};
use crate::audit::{AuditAction, Change};
use crate::auth::Auth;
use crate::auth::permission::perm;
use crate::auth::staff::Staff;
use crate::http::errors::{AppError, ErrorDetail};
use crate::media::process;
use crate::media::queries::{self, NewMedia};
use crate::media::{self as library, sniff};

type Manage = Staff<perm::ManageMedia>;

/// Limit of the small text fields.
const FIELD_LIMIT: u64 = 16 * 1024;

/// What the form sent.
#[derive(Default)]
struct Upload {
    file: Option<(Option<String>, Vec<u8>)>,
    alt_text: String,
    visibility: String,
}

enum ReadError {
    TooLarge,
    Malformed(String),
}

pub async fn upload(State(auth): State<Auth>, staff: Manage, req: Request) -> Response {
    let max = auth.config.media.max_bytes;
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("multipart/form-data"))
        .and_then(|v| multer::parse_boundary(v).ok());
    let Some(boundary) = boundary else {
        return AppError::UnsupportedMediaType(
            "send the upload form as multipart/form-data".into(),
        )
        .into_response();
    };
    let form = match read_form(req, boundary, max).await {
        Ok(f) => f,
        Err(ReadError::TooLarge) => return too_large(max),
        Err(ReadError::Malformed(why)) => {
            return AppError::bad_request("file", format!("the upload could not be read ({why})"))
                .into_response();
        }
    };
    let refuse = |why: String, alt: String| {
        let auth = auth.clone();
        let staff = &staff;
        async move {
            render_list(
                &auth,
                staff,
                None,
                Some(why),
                alt,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    let alt = match clean_alt(&form.alt_text) {
        Ok(a) => a,
        Err(why) => return refuse(why, form.alt_text).await,
    };
    let public = match parse_visibility(&form.visibility) {
        Ok(p) => p,
        Err(why) => return refuse(why, alt).await,
    };
    let Some((client_name, bytes)) = form.file.filter(|(_, b)| !b.is_empty()) else {
        return refuse("file: choose a file to upload".into(), alt).await;
    };
    let kind = match sniff::sniff(&bytes) {
        Ok(k) => k,
        Err(why) => return refuse(format!("file: {why}"), alt).await,
    };
    if kind.is_image() && alt.is_empty() {
        return refuse(ALT_REQUIRED.into(), alt).await;
    }
    let limits = library::limits(&auth.config);
    let processed = match process::run_blocking(move || process::ingest(&bytes, limits)).await {
        Some(Ok(p)) => p,
        Some(Err(why)) => return refuse(format!("file: {why}"), alt).await,
        None => {
            return refuse(
                format!("file: the {} could not be processed", kind.name()),
                alt,
            )
            .await;
        }
    };
    let id = Uuid::now_v7();
    let file_name = library::file_name(id, processed.kind);
    let key = library::object_key(staff.scope.id(), &file_name);
    let sha256 = library::sha256_hex(&processed.bytes);
    let size = processed.bytes.len() as i64;
    let label = library::display_label(client_name.as_deref());
    if let Err(e) = auth.media.put(&key, processed.bytes).await {
        return AppError::Unavailable(e.to_string()).into_response();
    }
    let recorded = in_write_tx!(auth.store.primary(), conn => {
        queries::insert(conn, &staff.scope, &NewMedia {
            id,
            file_name: &file_name,
            object_key: &key,
            label: &label,
            content_type: processed.kind.content_type(),
            bytes: size,
            sha256: &sha256,
            size: processed.size,
            alt_text: &alt,
            is_public: public,
            wants_variants: processed.kind.is_image(),
            uploaded_by: staff.user_id,
        }).await?;
        staff.audit().record(conn, AuditAction::MediaUploaded, &format!("media:{id}"),
            Change::new(json!(null), json!({"file": file_name, "type": processed.kind.content_type(),
                "bytes": size, "public": public}))).await?;
        Ok::<_, sqlx::Error>(())
    });
    if let Err(e) = recorded {
        // Nothing refers to the stored copy: take it away again.
        let _ = auth.media.delete(&key).await;
        return AppError::from(e).into_response();
    }
    crate::admin::redirect(&format!("/admin/media/{id}?done=uploaded"))
}

async fn read_form(req: Request, boundary: String, max: usize) -> Result<Upload, ReadError> {
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["csrf_token", "file", "alt_text", "visibility"])
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream((max + crate::http::body::UPLOAD_OVERHEAD) as u64)
                .per_field(FIELD_LIMIT)
                .for_field("file", max as u64),
        );
    let stream = req.into_body().into_data_stream();
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut form = Upload::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(read_error(e)),
        };
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "file" => {
                let client_name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(read_error)?;
                form.file = Some((client_name, bytes.to_vec()));
            }
            "alt_text" => form.alt_text = field.text().await.map_err(read_error)?,
            "visibility" => form.visibility = field.text().await.map_err(read_error)?,
            // The token was checked by the portal's layer.
            _ => {
                field.bytes().await.map_err(read_error)?;
            }
        }
    }
    Ok(form)
}

fn read_error(e: multer::Error) -> ReadError {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            ReadError::TooLarge
        }
        other => ReadError::Malformed(other.to_string()),
    }
}

/// 413, naming the limit and its setting.
pub fn too_large(max: usize) -> Response {
    let mut res = StatusCode::PAYLOAD_TOO_LARGE.into_response();
    res.extensions_mut().insert(ErrorDetail {
        title: "File too large".into(),
        message: format!(
            "file: the file is larger than the {} limit (VANTUS_MEDIA_MAX_BYTES)",
            crate::config::format_byte_size(max)
        ),
        field: Some("file".into()),
    });
    res
}
