//! What the Webhook plugin's templates do to the values they print, and how to undo it.
//!
//! The plugin puts `Name` (and the other free-text fields) into its template data with every `"`
//! turned into `\"` (`Escape` in `Jellyfin.Plugin.Webhook/Helpers/DataObjectHelpers.cs`, e.g.
//! line 56 `dataObject["Name"] = item.Name.Escape();`), and renders templates with
//! Handlebars.Net's defaults (`Handlebars.Compile` in `Destinations/BaseOption.cs`), which
//! HTML-escape a double-stash `{{Name}}`. A triple-stash `{{{Name}}}` gives valid JSON; a
//! double-stash one gives `\&quot;` for a quote, an escape JSON does not have, and a title with
//! a backslash (`AC\DC`) breaks either way. [`repair_json`] makes such a body JSON again so
//! that the event is not lost; [`decode_html_entities`] then undoes the HTML escaping.

/// The body with the escapes JSON does not have made valid: `\&quot;` (a quote the plugin
/// escaped, then Handlebars HTML-escaped) becomes `&quot;`, and a backslash before any other
/// character that cannot follow one becomes a literal backslash. `None` when there is nothing
/// to repair (or the body is not UTF-8).
pub fn repair_json(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = String::with_capacity(text.len() + 8);
    let mut repaired = false;
    let mut in_string = false;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        if !in_string {
            in_string = c == '"';
            out.push(c);
            continue;
        }
        match c {
            '"' => {
                in_string = false;
                out.push(c);
            }
            '\\' => {
                let rest = &text[at + 1..];
                let unicode = rest.len() > 4
                    && rest.starts_with('u')
                    && rest.as_bytes()[1..5].iter().all(u8::is_ascii_hexdigit);
                match rest.chars().next() {
                    Some('u') if !unicode => {
                        out.push_str("\\\\");
                        repaired = true;
                    }
                    Some(next @ ('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' | 'u')) => {
                        out.push('\\');
                        out.push(next);
                        chars.next();
                    }
                    _ if rest.starts_with("&quot;") => repaired = true,
                    _ => {
                        out.push_str("\\\\");
                        repaired = true;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    repaired.then(|| out.into_bytes())
}

/// Undoes the HTML escaping Handlebars applies to `{{Name}}`: the named entities it emits and
/// numeric character references. Anything else is left as it is.
pub fn decode_html_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let entity = &rest[1..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let code = if let Some(hex) = entity
                        .strip_prefix("#x")
                        .or_else(|| entity.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else if let Some(dec) = entity.strip_prefix('#') {
                        dec.parse::<u32>().ok()
                    } else {
                        None
                    };
                    code.and_then(char::from_u32).filter(|&c| c != '\0')
                }
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(body: &str) -> Option<String> {
        repair_json(body.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn a_double_stash_quote_and_a_stray_backslash_become_json() {
        assert_eq!(
            repaired(r#"{"Name":"The \&quot;Film\&quot;","ItemId":"x"}"#).as_deref(),
            Some(r#"{"Name":"The &quot;Film&quot;","ItemId":"x"}"#)
        );
        assert_eq!(
            repaired(r#"{"Name":"AC\DC"}"#).as_deref(),
            Some(r#"{"Name":"AC\\DC"}"#)
        );
        assert_eq!(
            repaired(r#"{"Name":"C:\users"}"#).as_deref(),
            Some(r#"{"Name":"C:\\users"}"#)
        );
    }

    #[test]
    fn valid_escapes_and_text_outside_strings_are_left_alone() {
        assert_eq!(repaired(r#"{"Name":"a \"b\" \\ \n \u00e9 \/"}"#), None);
        assert_eq!(
            repaired(r#"{"a": 1, "b": "\\&quot;"}"#),
            None,
            "an escaped backslash, then text"
        );
        assert_eq!(repair_json(b"{\"a\":\"\xff\"}"), None, "not UTF-8");
    }

    #[test]
    fn html_entities() {
        assert_eq!(decode_html_entities("A &amp; B"), "A & B");
        assert_eq!(
            decode_html_entities("&quot;Q&quot; &#x27;s&#39;"),
            "\"Q\" 's'"
        );
        assert_eq!(decode_html_entities("&lt;&gt;&#x60;&#x3D;"), "<>`=");
        assert_eq!(
            decode_html_entities("Fish & Chips; &bogus; &"),
            "Fish & Chips; &bogus; &"
        );
        assert_eq!(decode_html_entities("&#0;&#xD800;"), "&#0;&#xD800;");
    }
}
