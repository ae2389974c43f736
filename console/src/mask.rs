//! Phone numbers as the console shows them: masked to their last four digits unless an admin
//! reveals one (and each reveal is logged with the key id).

use parley::phone::E164;

/// `+14155552671` → `•••-•••-2671`; other countries `+•• ••• 2671`-style: the country code
/// stays, the rest but the last four is hidden.
pub fn masked(phone: &E164) -> String {
    let digits = phone.as_str().trim_start_matches('+');
    let last = &digits[digits.len().saturating_sub(4)..];
    match digits.strip_prefix('1') {
        Some(national) if national.len() == 10 => format!("•••-•••-{last}"),
        _ => {
            let hidden = digits.len().saturating_sub(4).saturating_sub(2);
            format!(
                "+{} {} {last}",
                &digits[..2.min(digits.len())],
                "•".repeat(hidden)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_four_digits_show() {
        let us = E164::parse("+14155552671").unwrap();
        assert_eq!(masked(&us), "•••-•••-2671");
        let pt = E164::parse("+351912345678").unwrap();
        let shown = masked(&pt);
        assert!(
            shown.ends_with(" 5678") && shown.starts_with("+35"),
            "{shown}"
        );
        assert!(!shown.contains("91234"), "{shown}");
    }
}
