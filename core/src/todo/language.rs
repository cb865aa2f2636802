//! Telling Urdu from English, deterministically.
//!
//! Urdu in Arabic script is recognised by its Unicode ranges; Roman Urdu
//! (Urdu written in Latin letters) by common marker words.

/// The language a message is written in, as far as routing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// English (or anything not recognised as Urdu).
    English,
    /// Urdu in Arabic script.
    Urdu,
    /// Urdu in Latin letters.
    RomanUrdu,
}

impl Language {
    /// Whether this is either form of Urdu.
    pub fn is_urdu(self) -> bool {
        !matches!(self, Language::English)
    }
}

/// Words that mark Latin-script text as Roman Urdu.
const ROMAN_URDU_MARKERS: &[&str] = &[
    "kya", "hai", "hain", "karo", "karein", "kren", "mujhe", "mera", "meray", "mere", "nahi",
    "nahin", "kaise", "kahan", "aap", "theek", "banao", "bana", "dikhao", "dikha", "kitne",
    "kitni", "hatao", "mukammal", "shukriya", "zaroor", "wala", "wali", "krdo", "kardo",
];

/// Whether `c` is in one of the Arabic-script blocks Urdu uses.
pub fn is_arabic_script(c: char) -> bool {
    matches!(c as u32, 0x0600..=0x06FF | 0x0750..=0x077F | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF)
}

/// Detects the language of `text`.
///
/// ```
/// use chatkit_engine::todo::language::{detect, Language};
/// assert_eq!(detect("دودھ خریدنے کا ٹاسک بنائیں"), Language::Urdu);
/// assert_eq!(detect("mera task banao"), Language::RomanUrdu);
/// assert_eq!(detect("add a task to buy milk"), Language::English);
/// ```
pub fn detect(text: &str) -> Language {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let arabic = text.chars().filter(|c| is_arabic_script(*c)).count();
    if arabic > 0 && arabic * 3 >= letters {
        return Language::Urdu;
    }
    let markers = words(text)
        .filter(|word| ROMAN_URDU_MARKERS.contains(&word.as_str()))
        .count();
    if markers >= 1 {
        Language::RomanUrdu
    } else {
        Language::English
    }
}

/// Lower-cased Latin words of `text`.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_scripts_and_marker_words() {
        assert_eq!(detect("میرے ٹاسک دکھائیں"), Language::Urdu);
        assert_eq!(detect("task: خریداری"), Language::Urdu);
        assert_eq!(detect("mujhe apne tasks dikhao"), Language::RomanUrdu);
        assert_eq!(detect("Show my tasks"), Language::English);
        assert_eq!(detect("Hai there"), Language::RomanUrdu);
        assert_eq!(detect(""), Language::English);
    }
}
