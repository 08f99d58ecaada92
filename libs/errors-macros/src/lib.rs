//! The catalogue form of `longship_errors::error_codes!`: reads one section of the error catalogue
//! (`docs/errors.md`) at build time and expands to the table form of `error_codes!`, so a crate's
//! codes are written once, in the catalogue its clients read. Used through `longship_errors`.

use proc_macro::{Delimiter, Group, TokenStream, TokenTree};

/// Expands `$crate; <attributes> <visibility> enum Name in "section" from "path"`: the codes
/// of the section `## section` of the file at `path` (relative to the crate's manifest folder),
/// as `$crate::error_codes! { ... enum Name in "section" { Variant = (code, Kind, meaning), ... } }`.
/// A variant is named after the last segment of its code (`order.not_found`: `NotFound`).
#[proc_macro]
pub fn codes_from_catalogue(input: TokenStream) -> TokenStream {
    expand(input).unwrap_or_else(|message| {
        format!("::core::compile_error!({message:?});")
            .parse()
            .unwrap_or_default()
    })
}

fn expand(input: TokenStream) -> Result<TokenStream, String> {
    let usage =
        "expected `$crate; <attributes> <visibility> enum Name in \"section\" from \"path\"`";
    let tokens = flatten(input);
    let at_enum = tokens
        .iter()
        .position(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "enum"))
        .ok_or(usage)?;
    let (krate, prefix) = match &tokens[..at_enum] {
        [krate, TokenTree::Punct(semi), prefix @ ..] if semi.as_char() == ';' => (krate, prefix),
        _ => return Err(usage.into()),
    };
    let (name, section, path) = match &tokens[at_enum + 1..] {
        [
            TokenTree::Ident(name),
            TokenTree::Ident(i),
            section,
            TokenTree::Ident(f),
            path,
        ] if i.to_string() == "in" && f.to_string() == "from" => {
            (name, string(section)?, string(path)?)
        }
        _ => return Err(usage.into()),
    };
    let dir = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    let file = std::path::Path::new(&dir).join(&path);
    let doc = std::fs::read_to_string(&file)
        .map_err(|e| format!("error_codes!: cannot read {}: {e}", file.display()))?;
    let mut body: TokenStream = prefix.iter().cloned().collect();
    let table = format!(
        "enum {name} in {section:?} {{ {} }}",
        variants(&doc, &section)?
    );
    body.extend(table.parse::<TokenStream>().map_err(|e| e.to_string())?);
    // include_str! makes the crate rebuild when the catalogue changes
    let mut out = format!("const _: &str = include_str!({:?});", file.display())
        .parse::<TokenStream>()
        .map_err(|e| e.to_string())?;
    out.extend([krate.clone()]);
    out.extend(
        "::error_codes!"
            .parse::<TokenStream>()
            .map_err(|e| e.to_string())?,
    );
    out.extend([TokenTree::Group(Group::new(Delimiter::Brace, body))]);
    Ok(out)
}

/// The tokens with macro_rules' invisible groups (around forwarded fragments) opened.
fn flatten(input: TokenStream) -> Vec<TokenTree> {
    input
        .into_iter()
        .flat_map(|t| match t {
            TokenTree::Group(g) if g.delimiter() == Delimiter::None => flatten(g.stream()),
            other => vec![other],
        })
        .collect()
}

/// The text of a plain string literal.
fn string(token: &TokenTree) -> Result<String, String> {
    let text = token.to_string();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.contains('\\'))
        .map(str::to_owned)
        .ok_or_else(|| format!("error_codes!: expected a plain string literal, found {text}"))
}

/// The section's rows as the table form's variants: `#[doc] Variant = (code, Kind, meaning),`.
fn variants(doc: &str, section: &str) -> Result<String, String> {
    let heading = format!("## {section}");
    let mut lines = doc.lines().skip_while(|l| l.trim_end() != heading);
    lines
        .next()
        .ok_or_else(|| format!("error_codes!: the catalogue has no section `{heading}`"))?;
    let rows: Vec<&str> = lines
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with('|'))
        .skip(2) // the header and its rule
        .collect();
    if rows.is_empty() {
        return Err(format!("error_codes!: section `{heading}` lists no codes"));
    }
    let mut names = Vec::new();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<&str> = row
            .trim()
            .trim_matches('|')
            .splitn(4, '|')
            .map(str::trim)
            .collect();
        let [code, http, grpc, meaning] = cells[..] else {
            return Err(format!(
                "error_codes!: `{row}` is not `| code | HTTP | gRPC | meaning |`"
            ));
        };
        let code = code.trim_matches('`');
        let variant = variant_name(code)?;
        if names.contains(&variant) {
            return Err(format!(
                "error_codes!: two codes of `{heading}` end in `{variant}`"
            ));
        }
        let kind = kind_of(http, grpc).ok_or_else(|| {
            format!("error_codes!: `{code}`: no kind answers HTTP {http} with gRPC {grpc}")
        })?;
        out.push_str(&format!(
            "#[doc = {meaning:?}] {variant} = ({code:?}, {kind}, {meaning:?}),"
        ));
        names.push(variant);
    }
    Ok(out)
}

/// `order.not_found` -> `NotFound`: the last segment of the code in upper camel case.
fn variant_name(code: &str) -> Result<String, String> {
    let last = code.rsplit('.').next().unwrap_or(code);
    if last.is_empty()
        || !last
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "error_codes!: `{code}` does not end in a snake_case segment"
        ));
    }
    Ok(last
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect())
}

/// The `longship_errors::Kind` answered with this HTTP status and gRPC code (a test in
/// longship-errors holds this mapping equal to `Kind::http_status` and `Kind::grpc_code`).
fn kind_of(http: &str, grpc: &str) -> Option<&'static str> {
    Some(match (http, grpc) {
        ("400", "INVALID_ARGUMENT") => "BadRequest",
        ("401", "UNAUTHENTICATED") => "Unauthenticated",
        ("403", "PERMISSION_DENIED") => "PermissionDenied",
        ("404", "NOT_FOUND") => "NotFound",
        ("409", "ALREADY_EXISTS") => "Conflict",
        ("409", "FAILED_PRECONDITION") => "FailedPrecondition",
        ("413", "OUT_OF_RANGE") => "PayloadTooLarge",
        ("415", "INVALID_ARGUMENT") => "UnsupportedMediaType",
        ("422", "INVALID_ARGUMENT") => "Validation",
        ("429", "RESOURCE_EXHAUSTED") => "TooManyRequests",
        ("503", "UNAVAILABLE") => "Unavailable",
        ("504", "DEADLINE_EXCEEDED") => "Timeout",
        ("500", "INTERNAL") => "Internal",
        _ => return None,
    })
}
