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

/// The `(metric, function)` pairs no EMF line of `logs` carries: an alarm on one of them
/// watches a metric its code path never emits.
pub fn missing_metrics<'a>(
    watched: &'a [(String, String)],
    logs: &[String],
) -> Vec<&'a (String, String)> {
    let mut emitted = std::collections::HashSet::new();
    for line in logs.iter().flat_map(|l| l.lines()) {
        // EMF lines are JSON objects with an `_aws` member, possibly after a log prefix.
        let Some(start) = line.find('{').filter(|_| line.contains("\"_aws\"")) else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line[start..]) else {
            continue;
        };
        let (true, Some(function)) = (value.get("_aws").is_some(), value["function"].as_str())
        else {
            continue;
        };
        for (metric, _) in value.as_object().into_iter().flatten() {
            emitted.insert((metric.clone(), function.to_owned()));
        }
    }
    watched.iter().filter(|w| !emitted.contains(*w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_metric_is_found_only_under_its_function() {
        let watched = vec![
            ("Failed".to_owned(), "send-worker".to_owned()),
            ("OptOuts".to_owned(), "inbound-sms".to_owned()),
        ];
        let line = parley::metrics::Metrics::new("send-worker")
            .count("Failed", 0)
            .to_line();
        let other = parley::metrics::Metrics::new("api")
            .count("OptOuts", 1)
            .to_line();
        let logs = vec![format!("noise\n{line}\nprefix {other}")];
        assert_eq!(
            missing_metrics(&watched, &logs),
            vec![&("OptOuts".to_owned(), "inbound-sms".to_owned())]
        );
    }

    #[test]
    fn numbers_in_either_form_and_long_bodies_are_found() {
        let manifest = "phone\t+14155550123\nbody\tMy sink is leaking again\nbody\tSí\n";
        assert!(findings("{\"phone\":\"p_abcd\"}\nSí", manifest).is_empty());
        assert_eq!(findings("x +14155550123 y", manifest).len(), 2);
        assert_eq!(findings("4155550123", manifest).len(), 1);
        assert_eq!(findings("body=My sink is leaking again", manifest).len(), 1);
    }
}
