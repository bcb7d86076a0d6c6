//! Reads Rust source text for the architecture test: comments and strings
//! blanked, `use` trees expanded, paths resolved to module files.

use std::collections::BTreeSet;

use super::Module;

/// The text with comments and string/char literals blanked out.
pub fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
pub fn expand(prefix: &[String], tree: &str, out: &mut Vec<Module>) {
    let mut depth = 0;
    let mut items = vec![String::new()];
    for ch in tree.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            items.push(String::new());
        } else {
            items.last_mut().unwrap().push(ch);
        }
    }
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        if let Some(open) = item.find('{') {
            let head = item[..open].trim_end_matches("::");
            let mut p = prefix.to_vec();
            p.extend(
                head.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            expand(&p, &item[open + 1..item.len() - 1], out);
        } else {
            let item = item.split(" as ").next().unwrap().trim();
            let mut p = prefix.to_vec();
            p.extend(
                item.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            out.push(p);
        }
    }
}

pub fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path the file mentions, as written.
pub fn paths_in(text: &str) -> Vec<Module> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0 || !rest[..at].ends_with(is_ident);
        let tail = &rest[at + 4..];
        if let (true, Some(end)) = (before_ok, tail.find(';')) {
            expand(&[], tail[..end].trim(), &mut out);
        }
        rest = &rest[at + 4..];
    }
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            let mut segs = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                segs.push(chars[start..j].iter().collect::<String>());
                if j + 2 < chars.len()
                    && chars[j] == ':'
                    && chars[j + 1] == ':'
                    && is_ident(chars[j + 2])
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 {
                out.push(segs);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The deepest module file that `path`, written in module `from`, names.
pub fn resolve(files: &BTreeSet<Module>, from: &Module, path: &Module) -> Option<Module> {
    let mut cur = from.clone();
    let mut segs = path.iter().peekable();
    match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            cur.clear();
            segs.next();
        }
        Some("self") => {
            segs.next();
        }
        Some("super") => {
            while segs.peek().map(|s| s.as_str()) == Some("super") {
                cur.pop();
                segs.next();
            }
        }
        Some(first) => {
            let mut child = cur.clone();
            child.push(first.to_string());
            if !files.contains(&child) {
                return None;
            }
        }
        None => return None,
    }
    for s in segs {
        let mut next = cur.clone();
        next.push(s.clone());
        if files.contains(&next) {
            cur = next;
        } else {
            break;
        }
    }
    files.contains(&cur).then_some(cur)
}
