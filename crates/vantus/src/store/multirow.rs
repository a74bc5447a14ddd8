//! Multi-row `INSERT … VALUES (…), (…)` for the write paths that store many rows at once (a
//! batch of leads committed together): one statement per table instead of one per row.
//!
//! A query module writes its row once, with `$1 … $n` placeholders and any constants
//! (`"($1, $2, 'new', $3)"`); [`values`] repeats it for each row with the placeholders
//! renumbered, and the caller binds the rows' values in order. `$N` placeholders are
//! positional on both engines, so the text serves SQLite and PostgreSQL alike.

/// The most bytes of values one statement carries. With its SQL text, a statement then fits
/// in one TLS record (16 KiB). A longer one is sent as two records in two writes, and while
/// sqlx 0.9.0 leaves Nagle's algorithm on (upstream issue #4335, fixed after that release),
/// the second write waits for the server's delayed ACK: 40 ms a statement, measured in
/// `bench/` as every batch of 32 leads taking 48 ms on PostgreSQL over TLS.
pub const MAX_STATEMENT_BYTES: usize = 12 * 1024;

/// Splits `rows` into runs whose `size` (the bytes of their bound values, roughly) stays
/// within [`MAX_STATEMENT_BYTES`]; a row larger than that goes alone.
pub fn chunks<T>(rows: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let n = size(row);
        if i > start && bytes + n > MAX_STATEMENT_BYTES {
            out.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// The `VALUES` list for `rows` rows of `row`, a parenthesised tuple using placeholders
/// `$1 ..= $params`. Row `r` (from 0) gets `$(r * params + k)` for each `$k`.
pub fn values(row: &str, params: usize, rows: usize) -> String {
    let mut out = String::with_capacity((row.len() + 8) * rows);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        let mut chars = row.char_indices().peekable();
        while let Some((_, ch)) = chars.next() {
            if ch != '$' {
                out.push(ch);
                continue;
            }
            let mut k = 0usize;
            let mut digits = 0;
            while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                k = k * 10 + d.to_digit(10).unwrap_or(0) as usize;
                digits += 1;
                chars.next();
            }
            debug_assert!(
                digits > 0 && (1..=params).contains(&k),
                "placeholder ${k} outside 1..={params} in {row}"
            );
            out.push('$');
            out.push_str(&(r * params + k).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{MAX_STATEMENT_BYTES, chunks, values};

    #[test]
    fn chunks_stay_within_the_statement_size_and_keep_every_row_in_order() {
        let rows: Vec<usize> = vec![4000, 4000, 4000, 4000, 20_000, 1, 1];
        let split = chunks(&rows, |&n| n);
        assert_eq!(
            split,
            vec![&rows[0..3], &rows[3..4], &rows[4..5], &rows[5..7]]
        );
        for chunk in &split {
            assert!(chunk.len() == 1 || chunk.iter().sum::<usize>() <= MAX_STATEMENT_BYTES);
        }
        assert!(chunks(&Vec::<usize>::new(), |&n| n).is_empty());
    }

    #[test]
    fn placeholders_are_renumbered_per_row_and_constants_kept() {
        assert_eq!(values("($1, 'new', $2)", 2, 1), "($1, 'new', $2)");
        assert_eq!(
            values("($1, 'new', $2, $2)", 2, 3),
            "($1, 'new', $2, $2), ($3, 'new', $4, $4), ($5, 'new', $6, $6)"
        );
        // Two-digit placeholders are read whole, not as `$1` followed by a digit.
        let row = "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        assert!(
            values(row, 12, 2)
                .ends_with("($13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)")
        );
        assert_eq!(values("($1)", 1, 0), "");
    }
}
