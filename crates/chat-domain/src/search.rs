//! Search terms: how message text and queries become the words the search index is keyed
//! by, and where those words sit in a text, for highlighting a match.
//!
//! A word is a run of letters, digits and combining marks; Chinese and Japanese characters,
//! written without spaces, are a word each. A word's term is its NFKC form in lower case, so
//! `Café`, `CAFÉ`, a decomposed `café` and full-width letters all meet.
//!
//! A query term of `MIN_PREFIX_CHARS` or more finds every word it starts, as people type
//! ("look" finds "looking"); a shorter one finds only the whole word, or "a" would find most
//! messages. So a word is indexed under its prefixes of `MIN_PREFIX_CHARS` to
//! `MAX_PREFIX_CHARS` characters (itself among them when no longer), a shorter word under
//! itself, and a query term is looked up by its first `MAX_PREFIX_CHARS` characters; the
//! message found is then checked against the whole term. In PostgreSQL the same matching is a
//! prefix tsquery (`to_tsquery('simple', 'look:*')`, a GIN index over the same folded words)
//! for long terms, and `=` for short ones; or a GIN index over these very index terms.

use std::collections::HashSet;
use std::ops::Range;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longer "words" are hashes, ids or noise: not indexed, and so never found.
pub const MAX_TERM_BYTES: usize = 64;
/// Distinct words indexed per message, so one long message can't cost the index thousands
/// of writes. A search counts as matching only what is indexed, so results stay consistent.
pub const MAX_WORDS_PER_MESSAGE: usize = 200;
/// Query terms this long or longer find the words they start; shorter ones whole words only.
pub const MIN_PREFIX_CHARS: usize = 3;
/// Prefixes are indexed up to this many characters. Most words are short: on the README's
/// English, every prefix would cost 2.76 postings per word (whole words: 1), up to 8
/// characters 2.62, up to 6 2.32; while a 64-byte identifier gets 6 terms, not 62. A longer
/// query term costs a check of the messages whose words share its first 8 characters, which
/// are few.
pub const MAX_PREFIX_CHARS: usize = 8;
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

/// The words a message is found by: distinct indexable terms, in order of first use, at most
/// `MAX_WORDS_PER_MESSAGE`.
fn indexed_words(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in words(text) {
        if terms.len() == MAX_WORDS_PER_MESSAGE {
            break;
        }
        if indexable(&word.term) && !terms.contains(&word.term) {
            terms.push(word.term);
        }
    }
    terms
}

/// Where `term` is kept in the index: a short term as itself, a longer one also under its
/// every prefix from `MIN_PREFIX_CHARS` up to `MAX_PREFIX_CHARS` characters.
fn index_keys(term: &str) -> impl Iterator<Item = &str> {
    let ends: Vec<usize> = term
        .char_indices()
        .map(|(at, c)| at + c.len_utf8())
        .collect();
    let shortest = MIN_PREFIX_CHARS.min(ends.len());
    let longest = MAX_PREFIX_CHARS.min(ends.len());
    (shortest..=longest)
        .filter(|&chars| chars > 0)
        .map(move |chars| &term[..ends[chars - 1]])
}

/// The terms a message is indexed under: its words' index keys, distinct, in order of first
/// use.
pub fn index_terms(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut terms = Vec::new();
    for word in indexed_words(text) {
        for key in index_keys(&word) {
            if seen.insert(key.to_owned()) {
                terms.push(key.to_owned());
            }
        }
    }
    terms
}

/// Whether a query term finds a word's term: the words it starts, or only itself if short.
fn finds(query_term: &str, word_term: &str) -> bool {
    if query_term.chars().count() < MIN_PREFIX_CHARS {
        word_term == query_term
    } else {
        word_term.starts_with(query_term)
    }
}

/// What someone searched for: its distinct terms, every one of which a match must find.
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

    /// The index terms to look up, distinct: each term's longest index key. Every message
    /// that matches is under all of them; one under them all may still not match (a term
    /// longer than `MAX_PREFIX_CHARS`), so check it with `matches`.
    pub fn index_lookups(&self) -> Vec<String> {
        let mut lookups: Vec<String> = Vec::new();
        for term in &self.terms {
            if let Some(key) = index_keys(term).last()
                && !lookups.iter().any(|known| known == key)
            {
                lookups.push(key.to_owned());
            }
        }
        lookups
    }

    /// Whether a message with this text matches: every term finds one of its indexed words.
    pub fn matches(&self, text: &str) -> bool {
        let indexed = indexed_words(text);
        self.terms
            .iter()
            .all(|term| indexed.iter().any(|word| finds(term, word)))
    }
}

/// A piece of an excerpt: text shown as it is, or a word that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub text: String,
    pub matched: bool,
}

/// At most about `max_chars` of `text` around its first match, cut between words, with runs
/// of whitespace shown as one space and "…" where it was cut. What each of `terms` found is
/// `matched`: a whole word, or the start of one a longer term found by its prefix. The
/// snippets are plain text: whoever shows them escapes them.
pub fn excerpt(text: &str, terms: &[String], max_chars: usize) -> Vec<Snippet> {
    let all_words: Vec<Word> = words(text).collect();
    let (start, end) = window(text, &all_words, terms, max_chars);
    let mut out: Vec<Snippet> = Vec::new();
    if start > 0 {
        push_plain(&mut out, "…");
    }
    let mut at = start;
    for word in &all_words {
        if word.range.start < start || word.range.end > end {
            continue;
        }
        let Some(found) = found_part(text, word, terms) else {
            continue;
        };
        push_plain(&mut out, &text[at..found.start]);
        out.push(Snippet {
            text: text[found.clone()].to_owned(),
            matched: true,
        });
        at = found.end;
    }
    push_plain(&mut out, &text[at..end]);
    if end < text.len() {
        push_plain(&mut out, "…");
    }
    out
}

/// Whether any of `terms` finds `word`, as the index would.
fn found_by(word: &Word, terms: &[String]) -> bool {
    indexable(&word.term) && terms.iter().any(|term| finds(term, &word.term))
}

/// Bytes of `text` that the longest of `terms` finding `word` stands for: the whole word for
/// one equal to it, else the shortest start of the word that folds to begin with the term,
/// with any combining marks after it, so an accent stays with its letter.
fn found_part(text: &str, word: &Word, terms: &[String]) -> Option<Range<usize>> {
    if !indexable(&word.term) {
        return None;
    }
    let longest = terms
        .iter()
        .filter(|term| finds(term, &word.term))
        .max_by_key(|term| term.len())?;
    let source = &text[word.range.clone()];
    let mut end = source
        .char_indices()
        .map(|(at, c)| at + c.len_utf8())
        .find(|&end| fold(&source[..end]).starts_with(longest.as_str()))
        .unwrap_or(source.len());
    end += source[end..]
        .chars()
        .take_while(|&c| is_combining_mark(c))
        .map(char::len_utf8)
        .sum::<usize>();
    Some(word.range.start..word.range.start + end)
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
        .find(|w| found_by(w, terms))
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
        assert_eq!(
            index_terms(&format!("{long} short")),
            ["sho", "shor", "short"]
        );
        let many: String = (0..MAX_WORDS_PER_MESSAGE + 50)
            .map(|n| format!("{n}x "))
            .collect();
        let terms = index_terms(&many);
        assert_eq!(terms[0], "0x");
        let last = format!("{}x", MAX_WORDS_PER_MESSAGE - 1);
        assert!(terms.contains(&last), "{terms:?}");
        let past = format!("{MAX_WORDS_PER_MESSAGE}x");
        assert!(!terms.contains(&past), "{terms:?}");
    }

    #[test]
    fn words_are_indexed_under_their_prefixes_of_three_to_eight_characters() {
        assert_eq!(
            index_terms("I am looking"),
            ["i", "am", "loo", "look", "looki", "lookin", "looking"]
        );
        assert_eq!(
            index_terms("Internationalization"),
            ["int", "inte", "inter", "intern", "interna", "internat"]
        );
        // Characters, not bytes; and one word's prefix is another's whole.
        assert_eq!(index_terms("Ｃａｆé caf"), ["caf", "café"]);
        assert_eq!(index_terms("東京"), ["東", "京"]);
    }

    #[test]
    fn a_term_of_three_or_more_characters_finds_the_words_it_starts() {
        let message = "We are LOOKING at the lobby";
        for found in ["look", "loo", "Looking", "LOB", "lobby", "we", "at"] {
            assert!(
                SearchQuery::parse(found).unwrap().matches(message),
                "{found}"
            );
        }
        for missed in ["lo", "w", "a", "looks", "ooking", "lobbyist"] {
            assert!(
                !SearchQuery::parse(missed).unwrap().matches(message),
                "{missed}"
            );
        }
        assert!(SearchQuery::parse("lo").unwrap().matches("lo and behold"));
        let long = SearchQuery::parse("internationalizat").unwrap();
        assert_eq!(long.index_lookups(), ["internat"]);
        assert!(long.matches("Internationalization"));
        assert!(
            !long.matches("international"),
            "checked past the indexed prefix"
        );
        assert_eq!(
            SearchQuery::parse("lo look looking internationale internationals")
                .unwrap()
                .index_lookups(),
            ["lo", "look", "looking", "internat"]
        );
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
    fn an_excerpt_marks_what_each_term_found() {
        let terms = vec!["cat".to_owned()];
        assert_eq!(
            shown(&excerpt(
                "A Cat,\n\n the cat's catalog <b>cat</b> scat",
                &terms,
                100
            )),
            "A [Cat], the [cat]'s [cat]alog <b>[cat]</b> scat"
        );
        let short = vec!["ca".to_owned()];
        assert_eq!(
            shown(&excerpt("ca cat CA", &short, 100)),
            "[ca] cat [CA]",
            "a short term finds whole words only"
        );
        let both = vec!["loo".to_owned(), "looki".to_owned()];
        assert_eq!(
            shown(&excerpt("Looking at loose ends", &both, 100)),
            "[Looki]ng at [loo]se ends",
            "the longest term that found the word"
        );
        let folded = vec!["stras".to_owned(), "caf".to_owned(), "fil".to_owned()];
        assert_eq!(
            shown(&excerpt("Straße cafe\u{301}s ﬁle", &folded, 100)),
            "[Straß]e [caf]e\u{301}s [ﬁl]e",
            "cut where the text folds to the term"
        );
        let accented = vec!["café".to_owned()];
        assert_eq!(
            shown(&excerpt("cafe\u{301}s", &accented, 100)),
            "[cafe\u{301}]s",
            "an accent stays with its letter"
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
        /// space), one piece is marked per word the term finds, and each marked piece folds
        /// to the term or, for a term of three or more, to something it starts.
        #[test]
        fn excerpts_mark_exactly_what_the_search_term_finds(
            text in "[a-cA-C \\n<>&\"é\u{301}東京]{0,60}",
            term in "[a-c]{1,4}",
        ) {
            let terms = vec![term];
            let snippets = excerpt(&text, &terms, 1000);
            let joined: String = snippets.iter().map(|s| s.text.as_str()).collect();
            let mut collapsed = Vec::new();
            push_plain(&mut collapsed, &text);
            proptest::prop_assert_eq!(joined, collapsed.pop().map(|s| s.text).unwrap_or_default());
            let marked: Vec<&Snippet> = snippets.iter().filter(|s| s.matched).collect();
            let found = words(&text)
                .filter(|w| indexable(&w.term) && finds(&terms[0], &w.term))
                .count();
            proptest::prop_assert_eq!(marked.len(), found);
            for snippet in marked {
                let folded = fold(&snippet.text);
                if terms[0].len() < MIN_PREFIX_CHARS {
                    proptest::prop_assert_eq!(&folded, &terms[0]);
                } else {
                    proptest::prop_assert!(folded.starts_with(terms[0].as_str()), "{:?}", snippet);
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
