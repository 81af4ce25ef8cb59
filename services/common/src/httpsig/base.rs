//! The signature base of RFC 9421 §2.5: one line per covered component, `"name": value`,
//! then `"@signature-params": <the inner list>`, joined by LF with no LF at the end.

use super::{Message, Refusal};

/// The signature base of `message` for the `covered` components and the serialized
/// `@signature-params` value.
pub fn signature_base(message: &Message, covered: &[String], params_value: &str) -> Result<String, Refusal> {
    let mut lines = Vec::with_capacity(covered.len() + 1);
    for name in covered {
        if name != &name.to_ascii_lowercase() {
            return Err(Refusal::Malformed(format!("component {name:?} must be lower case")));
        }
        let value = component_value(message, name)?;
        if value.contains('\n') || value.contains('\r') {
            return Err(Refusal::Malformed(format!("component {name:?} has a line break")));
        }
        lines.push(format!("\"{name}\": {value}"));
    }
    lines.push(format!("\"@signature-params\": {params_value}"));
    Ok(lines.join("\n"))
}

fn component_value(message: &Message, name: &str) -> Result<String, Refusal> {
    let path = if message.path.is_empty() { "/" } else { message.path.as_str() };
    let query = if message.query.is_empty() { String::new() } else { format!("?{}", message.query) };
    let scheme = if message.scheme.is_empty() { "https" } else { message.scheme.as_str() };
    Ok(match name {
        "@method" => message.method.clone(),
        "@scheme" => scheme.to_ascii_lowercase(),
        "@authority" => authority(scheme, &message.authority),
        "@path" => path.to_owned(),
        "@query" => {
            if query.is_empty() {
                "?".to_owned()
            } else {
                query
            }
        }
        "@request-target" => format!("{path}{query}"),
        "@target-uri" => format!("{scheme}://{}{path}{query}", authority(scheme, &message.authority)),
        "@signature-params" => return Err(Refusal::Malformed("@signature-params cannot be covered".into())),
        derived if derived.starts_with('@') => return Err(Refusal::Unsupported(format!("\"{derived}\""))),
        header => {
            let values: Vec<&str> = message.header_values(header).map(str::trim).collect();
            if values.is_empty() {
                return Err(Refusal::AbsentComponent(header.to_owned()));
            }
            values.join(", ")
        }
    })
}

/// Host and port in lower case, without the scheme's default port (§2.2.3).
fn authority(scheme: &str, authority: &str) -> String {
    let lower = authority.to_ascii_lowercase();
    let default = if scheme.eq_ignore_ascii_case("http") { ":80" } else { ":443" };
    lower.strip_suffix(default).map_or(lower.clone(), str::to_owned)
}
