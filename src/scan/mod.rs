//! Built-in security scanners (secrets in a tree, dangerous pipeline settings) and SARIF output.
