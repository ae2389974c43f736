//! How carriers split a text into segments: GSM-7 (160 characters, 153 per part when split,
//! extension characters counting twice) unless one character needs UCS-2 (70, 67 per part).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segments {
    pub count: u32,
    pub encoding: Encoding,
}

/// The GSM 03.38 basic character set.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: each costs an escape plus the character.
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

pub fn count(text: &str) -> Segments {
    let mut septets = 0u32;
    let mut gsm = true;
    for c in text.chars() {
        if GSM_BASIC.contains(c) {
            septets += 1;
        } else if GSM_EXTENSION.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    if gsm {
        return Segments {
            count: parts(septets, 160, 153),
            encoding: Encoding::Gsm7,
        };
    }
    // UCS-2 counts UTF-16 code units: an emoji outside the BMP takes two.
    let units = text.encode_utf16().count() as u32;
    Segments {
        count: parts(units, 70, 67),
        encoding: Encoding::Ucs2,
    }
}

fn parts(units: u32, single: u32, per_part: u32) -> u32 {
    if units <= single {
        1
    } else {
        units.div_ceil(per_part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &str) -> (u32, Encoding) {
        let s = count(text);
        (s.count, s.encoding)
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(seg(""), (1, Encoding::Gsm7));
        assert_eq!(seg(&"a".repeat(160)), (1, Encoding::Gsm7));
        assert_eq!(seg(&"a".repeat(161)), (2, Encoding::Gsm7));
        assert_eq!(seg(&"a".repeat(306)), (2, Encoding::Gsm7));
        assert_eq!(seg(&"a".repeat(307)), (3, Encoding::Gsm7));
        assert_eq!(
            seg("¿Qué tal, Ñoño? £5 @ 3pm, è ù"),
            (1, Encoding::Gsm7),
            "accents in GSM-7 stay GSM-7"
        );
        assert_eq!(seg("ú").1, Encoding::Ucs2, "but not every accent is GSM-7");
    }

    #[test]
    fn extension_characters_count_double() {
        for c in ['{', '}', '[', ']', '~', '\\', '|', '^', '€'] {
            assert_eq!(seg(&c.to_string().repeat(80)), (1, Encoding::Gsm7), "{c}");
            assert_eq!(seg(&c.to_string().repeat(81)), (2, Encoding::Gsm7), "{c}");
        }
        assert_eq!(seg(&format!("{}€", "a".repeat(158))), (1, Encoding::Gsm7));
        assert_eq!(seg(&format!("{}€", "a".repeat(159))), (2, Encoding::Gsm7));
    }

    #[test]
    fn one_non_gsm_character_makes_the_whole_message_ucs2() {
        assert_eq!(seg(&format!("{}ç", "a".repeat(69))), (1, Encoding::Ucs2));
        assert_eq!(seg(&format!("{}ç", "a".repeat(70))), (2, Encoding::Ucs2));
        assert_eq!(seg(&format!("{}ç", "a".repeat(133))), (2, Encoding::Ucs2));
        assert_eq!(seg(&format!("{}ç", "a".repeat(134))), (3, Encoding::Ucs2));
        assert_eq!(seg("Olá, não esqueça 👍"), (1, Encoding::Ucs2));
        assert_eq!(
            seg(&"👍".repeat(35)),
            (1, Encoding::Ucs2),
            "each emoji is two UTF-16 units"
        );
        assert_eq!(seg(&"👍".repeat(36)), (2, Encoding::Ucs2));
    }
}
