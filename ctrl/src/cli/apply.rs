//! `fvs apply -f FILE`: what a config file changed.

use crate::proto::ApplyResult;

pub(super) fn format_apply(result: &ApplyResult) -> String {
    if result.changes.is_empty() {
        return "no changes\n".to_string();
    }
    result.changes.iter().map(|c| format!("{c}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_formatted() {
        assert_eq!(format_apply(&ApplyResult::default()), "no changes\n");
        let r = ApplyResult {
            changes: vec!["addr add 192.0.2.1/24 dev dp0".into(), "route del 10.0.0.0/8 dev dp0".into()],
        };
        assert_eq!(format_apply(&r), "addr add 192.0.2.1/24 dev dp0\nroute del 10.0.0.0/8 dev dp0\n");
    }
}
