//! Rules: the defaults of the product brief, and the TOML rules file that
//! tightens them for one bank (a product catalog, a lower quantity limit,
//! patterns, id widths to pad Excel numbers to).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::columns::Field;
use crate::error::{Error, Result};

/// The largest quantity of one product line unless the rules file says less.
pub const DEFAULT_QUANTITY_MAX: u32 = 500;

/// The rules every row is checked against.
#[derive(Debug, Clone)]
pub struct Rules {
    pub quantity_max: u32,
    /// Extra full-match patterns per field.
    pub patterns: Vec<(Field, Regex)>,
    /// Width to pad an id read from a numeric Excel cell to.
    pub id_widths: HashMap<Field, usize>,
    /// Allowed products, and per product its BINs and plastic codes.
    pub catalog: Option<HashMap<String, CatalogEntry>>,
    /// Every warning refuses its row (`warnings = "refuse"`, `--strict`).
    pub strict: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CatalogEntry {
    /// Empty: any BIN.
    pub bins: HashSet<String>,
    /// Empty: any plastic code.
    pub plastic_codes: HashSet<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            quantity_max: DEFAULT_QUANTITY_MAX,
            patterns: Vec::new(),
            id_widths: HashMap::new(),
            catalog: None,
            strict: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    quantity: Option<QuantityRules>,
    #[serde(default)]
    patterns: BTreeMap<String, String>,
    #[serde(default)]
    id_widths: BTreeMap<String, usize>,
    #[serde(default)]
    catalog: Vec<ProductFile>,
    warnings: Option<Warnings>,
}

/// What a warning does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Warnings {
    /// Shown; the row stays valid (the default).
    Show,
    /// The row is refused, as for an error.
    Refuse,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantityRules {
    max: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductFile {
    product_id: String,
    #[serde(default)]
    bins: Vec<String>,
    #[serde(default)]
    plastic_codes: Vec<String>,
}

impl Rules {
    /// Loads a rules file; every mistake in it is a usage error naming the file.
    pub fn load(path: &Path) -> Result<Rules> {
        let text = crate::files::read_small(path, 1 << 20).map_err(|e| Error::Rules {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Rules::parse(&text).map_err(|message| Error::Rules {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Rules, String> {
        let file: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut rules = Rules {
            strict: file.warnings == Some(Warnings::Refuse),
            ..Rules::default()
        };
        if let Some(q) = file.quantity {
            if q.max == 0 {
                return Err("quantity.max must be at least 1".into());
            }
            rules.quantity_max = q.max;
        }
        for (name, pattern) in file.patterns {
            let field = field_named(&name, "patterns")?;
            let re = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("patterns.{name}: not a valid regular expression: {e}"))?;
            rules.patterns.push((field, re));
        }
        for (name, width) in file.id_widths {
            let field = field_named(&name, "id_widths")?;
            if !field.is_id() {
                return Err(format!(
                    "id_widths.{name}: only branch_id, product_id, bin, plastic_code and pin_code take a width"
                ));
            }
            if width == 0 || width > 32 {
                return Err(format!("id_widths.{name}: width must be between 1 and 32"));
            }
            rules.id_widths.insert(field, width);
        }
        if !file.catalog.is_empty() {
            let mut catalog = HashMap::new();
            for p in file.catalog {
                let entry = CatalogEntry {
                    bins: p.bins.into_iter().collect(),
                    plastic_codes: p.plastic_codes.into_iter().collect(),
                };
                if catalog.insert(p.product_id.clone(), entry).is_some() {
                    return Err(format!(
                        "catalog: product_id `{}` is listed twice",
                        p.product_id
                    ));
                }
            }
            rules.catalog = Some(catalog);
        }
        Ok(rules)
    }
}

fn field_named(name: &str, table: &str) -> Result<Field, String> {
    Field::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        format!(
            "{table}.{name}: unknown field; fields are {}",
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_table() {
        let r = Rules::parse(
            r#"
            quantity = { max = 200 }
            [patterns]
            pin_code = "[1-9][0-9]{5}"
            [id_widths]
            branch_id = 5
            [[catalog]]
            product_id = "01"
            bins = ["412345"]
            plastic_codes = ["0001"]
            "#,
        )
        .unwrap();
        assert_eq!(r.quantity_max, 200);
        assert!(r.patterns[0].1.is_match("400001"));
        assert!(
            !r.patterns[0].1.is_match("0400001"),
            "patterns match in full"
        );
        assert_eq!(r.id_widths[&Field::BranchId], 5);
        assert!(r.catalog.unwrap()["01"].bins.contains("412345"));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, want) in [
            ("[patterns]\nbogus = \"x\"", "patterns.bogus: unknown field"),
            (
                "[patterns]\npin_code = \"(\"",
                "not a valid regular expression",
            ),
            ("[id_widths]\nbranch_name = 4", "only branch_id"),
            ("quantity = { max = 0 }", "at least 1"),
            ("colour = 3", "unknown field"),
            (
                "[[catalog]]\nproduct_id = \"1\"\n[[catalog]]\nproduct_id = \"1\"",
                "listed twice",
            ),
        ] {
            let e = Rules::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
