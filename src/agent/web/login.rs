//! The sign-in page: a token from the agent's configuration, posted once and traded for a
//! session cookie.

use super::escape::text;
use super::layout::page;

pub fn render(refused: Option<&str>) -> String {
    let said = refused
        .map(|why| format!("<p id=\"refused\" class=\"bad\">{}</p>", text(why)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1>{said}<form class=\"box\" method=\"post\" action=\"/login\">\
         <label>Token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" required></label> \
         <button id=\"sign-in\">Sign in</button></form>\
         <p class=\"quiet\">A token from the agent's configuration; the page keeps a session, not the token.</p>"
    );
    page("Sign in", None, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_shown_escaped() {
        let html = render(Some("<bad> token"));
        assert!(html.contains("&lt;bad&gt; token"), "{html}");
        assert!(html.contains("type=\"password\" name=\"token\""), "{html}");
    }
}
