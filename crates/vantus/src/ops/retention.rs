//! Which old backups to delete: keep the newest backup of each of the last N days that have
//! one, and of each of the last M ISO weeks that have one (grandfather-father-son without the
//! grandfather). The backup just made is always kept.

use std::collections::BTreeSet;

use super::destination::time_of;

/// Names (any order) → the names to delete.
pub fn to_delete(
    names: &[String],
    keep_daily: u32,
    keep_weekly: u32,
    just_made: &str,
) -> Vec<String> {
    let mut dated: Vec<(time::PrimitiveDateTime, &String)> = names
        .iter()
        .filter_map(|n| time_of(n).map(|t| (t, n)))
        .collect();
    dated.sort_by_key(|d| std::cmp::Reverse(d.0)); // newest first
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    keep.insert(just_made);
    let mut days = BTreeSet::new();
    let mut weeks = BTreeSet::new();
    for (t, name) in &dated {
        let day = t.date();
        if days.len() < keep_daily as usize && days.insert(day) {
            keep.insert(name);
        }
        let (year, week, _) = day.to_iso_week_date();
        if weeks.len() < keep_weekly as usize && weeks.insert((year, week)) {
            keep.insert(name);
        }
    }
    dated
        .iter()
        .filter(|(_, n)| !keep.contains(n.as_str()))
        .map(|(_, n)| (*n).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        format!("vantus-{s}.vbak")
    }

    #[test]
    fn keeps_newest_per_day_and_week() {
        // Three a day for ten days, 2026-11-01 (a Sunday) to 2026-11-10.
        let mut names = Vec::new();
        for d in 1..=10 {
            for h in ["010000", "090000", "170000"] {
                names.push(name(&format!("202611{d:02}T{h}Z")));
            }
        }
        names.push("notes.txt".into());
        let newest = name("20261110T170000Z");
        let doomed = to_delete(&names, 3, 3, &newest);
        let kept: Vec<_> = names
            .iter()
            .filter(|n| n.ends_with(".vbak") && !doomed.contains(n))
            .collect();
        // Daily: the 10th, 9th and 8th. Weekly: ISO weeks 46 (the 10th), 45 (Mon 2nd to Sun
        // 8th: the 8th) and 44 (ends Sun 1st: the 1st).
        assert_eq!(
            kept,
            [
                name("20261101T170000Z"),
                name("20261108T170000Z"),
                name("20261109T170000Z"),
                name("20261110T170000Z")
            ]
            .iter()
            .collect::<Vec<_>>()
        );
        assert!(
            !doomed.contains(&"notes.txt".to_string()),
            "only our archives are touched"
        );
    }

    #[test]
    fn zero_keeps_only_the_new_one() {
        let names = vec![name("20261101T000000Z"), name("20261102T000000Z")];
        assert_eq!(to_delete(&names, 0, 0, &names[1]), vec![names[0].clone()]);
    }
}
