//! The log audit run after the test suite: no phone number and no message body that the tests
//! used may appear anywhere in the captured logs.

/// Values the tests used, one per line as `phone<TAB>+14155552671` or `body<TAB>text`.
pub fn findings(log: &str, manifest: &str) -> Vec<String> {
    let mut needles: Vec<(String, &'static str)> = Vec::new();
    for line in manifest.lines() {
        match line.split_once('\t') {
            Some(("phone", number)) => {
                let digits: String = number.chars().filter(char::is_ascii_digit).collect();
                needles.push((number.to_owned(), "phone number"));
                if digits.len() >= 10 {
                    // The national form too: the last ten digits of a NANP number.
                    needles.push((
                        digits[digits.len() - 10..].to_owned(),
                        "phone number (national)",
                    ));
                }
            }
            // Short bodies ("Sí", "STOP") are words any log may contain; long ones are unique.
            Some(("body", body)) if body.chars().count() >= 12 => {
                needles.push((body.to_owned(), "message body"))
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    for (i, line) in log.lines().enumerate() {
        for (needle, kind) in &needles {
            if line.contains(needle.as_str()) {
                found.push(format!("line {}: a {kind} used by the tests", i + 1));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_either_form_and_long_bodies_are_found() {
        let manifest = "phone\t+14155550123\nbody\tMy sink is leaking again\nbody\tSí\n";
        assert!(findings("{\"phone\":\"p_abcd\"}\nSí", manifest).is_empty());
        assert_eq!(findings("x +14155550123 y", manifest).len(), 2);
        assert_eq!(findings("4155550123", manifest).len(), 1);
        assert_eq!(findings("body=My sink is leaking again", manifest).len(), 1);
    }
}
