//! Search terms: how message text and queries become the words the search index is keyed
//! by, and where those words sit in a text, for highlighting a match.
//!
//! A word is a run of letters, digits and combining marks; Chinese and Japanese characters,
//! written without spaces, are a word each. A word's term is its NFKC form in lower case, so
//! `Café`, `CAFÉ`, a decomposed `café` and full-width letters all meet.

use std::ops::Range;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longer "words" are hashes, ids or noise: not indexed, and so never found.
pub const MAX_TERM_BYTES: usize = 64;
/// Distinct terms indexed per message, so one long message can't cost the index thousands
/// of writes. A search counts as matching only what is indexed, so results stay consistent.
pub const MAX_TERMS_PER_MESSAGE: usize = 200;
pub const MAX_QUERY_CHARS: usize = 200;
pub const MAX_QUERY_TERMS: usize = 8;

/// A word of a text: where it is (bytes), and the term it folds to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub range: Range<usize>,
    pub term: String,
}

/// The words of `text`, in order.
pub fn words(text: &str) -> impl Iterator<Item = Word> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, first) = chars.find(|&(_, c)| is_word_char(c))?;
        let mut end = start + first.len_utf8();
        if !stands_alone(first) {
            while let Some(&(at, c)) = chars.peek() {
                if !is_word_char(c) || stands_alone(c) {
                    break;
                }
                end = at + c.len_utf8();
                chars.next();
            }
        }
        Some(Word {
            range: start..end,
            term: fold(&text[start..end]),
        })
    })
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Han ideographs and kana: languages written without spaces, searched character by
/// character.
fn stands_alone(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF | 0xFF66..=0xFF9F | 0x20000..=0x3134F)
}

/// NFKC and lower case, plus the full case folds lower case lacks (`ß`, final `ς`).
fn fold(word: &str) -> String {
    let mut folded = String::with_capacity(word.len());
    for c in word.nfkc().flat_map(char::to_lowercase) {
        match c {
            'ß' => folded.push_str("ss"),
            'ς' => folded.push('σ'),
            c => folded.push(c),
        }
    }
    folded.nfkc().collect()
}

/// Whether a term can be in the index at all.
fn indexable(term: &str) -> bool {
    !term.is_empty() && term.len() <= MAX_TERM_BYTES
}

/// The terms a message is indexed under: distinct, in order of first use, at most
/// `MAX_TERMS_PER_MESSAGE`.
pub fn index_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in words(text) {
        if terms.len() == MAX_TERMS_PER_MESSAGE {
            break;
        }
        if indexable(&word.term) && !terms.contains(&word.term) {
            terms.push(word.term);
        }
    }
    terms
}

/// What someone searched for: its distinct terms, every one of which a match must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    text: String,
    terms: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("Type a word to search for.")]
    Empty,
    #[error("A search can be at most {MAX_QUERY_CHARS} characters long.")]
    TooLong,
    #[error("A search can have at most {MAX_QUERY_TERMS} words.")]
    TooManyWords,
}

impl SearchQuery {
    pub fn parse(input: &str) -> Result<SearchQuery, QueryError> {
        let text = input.trim();
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong);
        }
        let mut terms: Vec<String> = Vec::new();
        for word in words(text) {
            if !terms.contains(&word.term) {
                terms.push(word.term);
            }
        }
        if terms.is_empty() {
            return Err(QueryError::Empty);
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(QueryError::TooManyWords);
        }
        Ok(SearchQuery {
            text: text.to_owned(),
            terms,
        })
    }

    /// The query as typed, trimmed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    /// Whether a message with this text matches: every term is among its indexed terms.
    pub fn matches(&self, text: &str) -> bool {
        let indexed = index_terms(text);
        self.terms.iter().all(|term| indexed.contains(term))
    }
}

/// A piece of an excerpt: text shown as it is, or a word that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub text: String,
    pub matched: bool,
}

/// At most about `max_chars` of `text` around its first match, cut between words, with runs
/// of whitespace shown as one space and "…" where it was cut. Words folding to one of
/// `terms` are `matched`. The snippets are plain text: whoever shows them escapes them.
pub fn excerpt(text: &str, terms: &[String], max_chars: usize) -> Vec<Snippet> {
    let all_words: Vec<Word> = words(text).collect();
    let (start, end) = window(text, &all_words, terms, max_chars);
    let mut out: Vec<Snippet> = Vec::new();
    if start > 0 {
        push_plain(&mut out, "…");
    }
    let mut at = start;
    for word in &all_words {
        if word.range.start < start || word.range.end > end || !terms.contains(&word.term) {
            continue;
        }
        push_plain(&mut out, &text[at..word.range.start]);
        out.push(Snippet {
            text: text[word.range.clone()].to_owned(),
            matched: true,
        });
        at = word.range.end;
    }
    push_plain(&mut out, &text[at..end]);
    if end < text.len() {
        push_plain(&mut out, "…");
    }
    out
}

/// Byte bounds of the excerpt: the whole text when short; otherwise `max_chars` starting a
/// little before the first match, moved off any word they would cut in two.
fn window(text: &str, words: &[Word], terms: &[String], max_chars: usize) -> (usize, usize) {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(at, _)| at)
        .chain([text.len()])
        .collect();
    let chars = bounds.len() - 1;
    if chars <= max_chars {
        return (0, text.len());
    }
    let first_match = words
        .iter()
        .find(|w| terms.contains(&w.term))
        .map_or(0, |w| w.range.start);
    let anchor = bounds.partition_point(|&b| b < first_match);
    let lead = max_chars / 4;
    let end_char = (anchor.saturating_sub(lead) + max_chars).min(chars);
    let start_char = end_char.saturating_sub(max_chars);
    let (mut start, mut end) = (bounds[start_char], bounds[end_char]);
    if let Some(cut) = words
        .iter()
        .find(|w| w.range.contains(&start) && w.range.start < start)
    {
        start = cut.range.end;
    }
    if let Some(cut) = words
        .iter()
        .find(|w| w.range.start < end && end < w.range.end)
    {
        end = cut.range.start.max(start);
    }
    (start, end)
}

/// Appends unmatched text, whitespace runs as one space, joined to a previous plain piece.
fn push_plain(out: &mut Vec<Snippet>, text: &str) {
    if text.is_empty() {
        return;
    }
    if !matches!(out.last(), Some(last) if !last.matched) {
        out.push(Snippet {
            text: String::new(),
            matched: false,
        });
    }
    let plain = &mut out.last_mut().expect("just pushed").text;
    for c in text.chars() {
        if !c.is_whitespace() {
            plain.push(c);
        } else if !plain.ends_with(' ') {
            plain.push(' ');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms_of(text: &str) -> Vec<String> {
        words(text).map(|w| w.term).collect()
    }

    #[test]
    fn words_fold_case_width_and_compatibility_forms() {
        assert_eq!(
            terms_of("Hello, WORLD! Ｆｕｌｌ ﬁle don't 3.14"),
            ["hello", "world", "full", "file", "don", "t", "3", "14"]
        );
        assert_eq!(terms_of("Café"), terms_of("cafe\u{301}"));
        assert_eq!(terms_of("ΣΊΣΥΦΟΣ"), terms_of("σίσυφος"));
        assert_eq!(terms_of("STRASSE"), terms_of("Straße"));
    }

    #[test]
    fn combining_marks_stay_in_their_word_and_ideographs_stand_alone() {
        assert_eq!(terms_of("हिन्दी भाषा"), ["हिन्दी", "भाषा"]);
        assert_eq!(
            terms_of("東京で会議 ok"),
            ["東", "京", "で", "会", "議", "ok"]
        );
    }

    #[test]
    fn a_message_is_indexed_under_distinct_bounded_terms() {
        assert_eq!(index_terms("The cat saw the CAT"), ["the", "cat", "saw"]);
        let long = "x".repeat(MAX_TERM_BYTES + 1);
        assert_eq!(index_terms(&format!("{long} short")), ["short"]);
        let many: String = (0..MAX_TERMS_PER_MESSAGE + 50)
            .map(|n| format!("w{n} "))
            .collect();
        let terms = index_terms(&many);
        assert_eq!(terms.len(), MAX_TERMS_PER_MESSAGE);
        assert_eq!(terms[0], "w0");
    }

    #[test]
    fn queries_need_words_and_stay_short() {
        let query = SearchQuery::parse("  Deploy the deploy  ").unwrap();
        assert_eq!(query.as_str(), "Deploy the deploy");
        assert_eq!(query.terms(), ["deploy", "the"]);
        assert!(query.matches("we deploy THE thing"));
        assert!(
            !query.matches("we deploy things"),
            "every term must be there"
        );
        assert_eq!(SearchQuery::parse("   "), Err(QueryError::Empty));
        assert_eq!(SearchQuery::parse("?! …"), Err(QueryError::Empty));
        assert_eq!(
            SearchQuery::parse(&"a".repeat(MAX_QUERY_CHARS + 1)),
            Err(QueryError::TooLong)
        );
        assert_eq!(
            SearchQuery::parse("a b c d e f g h i"),
            Err(QueryError::TooManyWords)
        );
    }

    fn shown(snippets: &[Snippet]) -> String {
        snippets
            .iter()
            .map(|s| {
                if s.matched {
                    format!("[{}]", s.text)
                } else {
                    s.text.clone()
                }
            })
            .collect()
    }

    #[test]
    fn an_excerpt_marks_whole_matching_words_only() {
        let terms = vec!["cat".to_owned()];
        assert_eq!(
            shown(&excerpt(
                "A Cat,\n\n the cat's catalog <b>cat</b>",
                &terms,
                100
            )),
            "A [Cat], the [cat]'s catalog <b>[cat]</b>"
        );
    }

    #[test]
    fn a_long_text_is_cut_between_words_around_the_first_match() {
        let text = format!("{} needle {}", "hay ".repeat(100), "straw ".repeat(100));
        let terms = vec!["needle".to_owned()];
        let cut = shown(&excerpt(&text, &terms, 60));
        assert!(cut.starts_with("… hay") && cut.ends_with(" …"), "{cut}");
        assert!(cut.contains("[needle]"), "{cut}");
        assert!(cut.chars().count() <= 60 + 4, "{cut}");
        assert!(
            words(&cut).all(|w| ["hay", "needle", "straw"].contains(&w.term.as_str())),
            "no word cut in two: {cut}"
        );
    }

    proptest::proptest! {
        /// Nothing is lost or invented: a short text comes back whole (whitespace runs as one
        /// space), every marked piece is a search term, and no unmarked piece holds one.
        #[test]
        fn excerpts_mark_exactly_the_search_terms(
            text in "[a-cA-C \\n<>&\"é\u{301}東京]{0,60}",
            term in "[a-c]{1,2}",
        ) {
            let terms = vec![term];
            let snippets = excerpt(&text, &terms, 1000);
            let joined: String = snippets.iter().map(|s| s.text.as_str()).collect();
            let mut collapsed = Vec::new();
            push_plain(&mut collapsed, &text);
            proptest::prop_assert_eq!(joined, collapsed.pop().map(|s| s.text).unwrap_or_default());
            for snippet in &snippets {
                if snippet.matched {
                    proptest::prop_assert_eq!(fold(&snippet.text), terms[0].clone());
                } else {
                    proptest::prop_assert!(words(&snippet.text).all(|w| w.term != terms[0]));
                }
            }
        }

        #[test]
        fn long_excerpts_stay_bounded_and_keep_the_match(
            before in "[a-z ]{0,300}",
            after in "[a-z ]{0,300}",
        ) {
            let text = format!("{before} Needle {after}");
            let terms = vec!["needle".to_owned()];
            let snippets = excerpt(&text, &terms, 80);
            proptest::prop_assert!(snippets.iter().any(|s| s.matched && s.text == "Needle"));
            let shown: usize = snippets.iter().map(|s| s.text.chars().count()).sum();
            proptest::prop_assert!(shown <= 80 + 2, "{:?}", snippets);
        }
    }
}
