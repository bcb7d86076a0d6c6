//! The one piece of template syntax: `[a|b|c]` picks one alternative
//! (an empty alternative, `[very |]`, makes a word optional). No nesting.
//! Bitext placeholders such as `{{Order Number}}` are plain text here.

use crate::rng::Rng;

/// The fixed text and alternative groups of a template, in order.
fn parts(template: &str) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('[') {
        let close = rest[open..]
            .find(']')
            .map(|i| open + i)
            .unwrap_or_else(|| panic!("unclosed '[' in template {template:?}"));
        out.push(vec![&rest[..open]]);
        out.push(rest[open + 1..close].split('|').collect());
        rest = &rest[close + 1..];
    }
    out.push(vec![rest]);
    out
}

/// One expansion, each group chosen uniformly.
pub fn pick(template: &str, rng: &mut Rng) -> String {
    let mut s = String::new();
    for group in parts(template) {
        s.push_str(
            group[if group.len() > 1 {
                rng.below(group.len())
            } else {
                0
            }],
        );
    }
    s
}

/// Every expansion (for exhaustive tests of what the generator can write).
pub fn expand_all(template: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for group in parts(template) {
        out = out
            .iter()
            .flat_map(|prefix| group.iter().map(move |alt| format!("{prefix}{alt}")))
            .collect();
    }
    out
}

/// Words as the length limits count them (whitespace-separated).
pub fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// One random element.
pub fn choose<T: Copy>(items: &[T], rng: &mut Rng) -> T {
    items[rng.below(items.len())]
}

#[cfg(test)]
mod tests {
    use crate::data::support::alt::*;

    #[test]
    fn expands_every_combination() {
        let all = expand_all("[Hi|Hello] there[!|.]");
        assert_eq!(
            all,
            ["Hi there!", "Hi there.", "Hello there!", "Hello there."]
        );
        assert_eq!(expand_all("[a|b|c] x [y|]").len(), 6);
        assert_eq!(
            expand_all("plain {{Order Number}}"),
            ["plain {{Order Number}}"]
        );
        let mut rng = Rng::new(1);
        for _ in 0..20 {
            assert!(all.contains(&pick("[Hi|Hello] there[!|.]", &mut rng)));
        }
    }
}
