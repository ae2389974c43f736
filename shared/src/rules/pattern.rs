//! EventBridge event patterns, evaluated by Parley itself.
//!
//! Every event on the bus reaches one SQS queue; the router matches each against the rules it
//! holds in memory. So a rule's `match` must mean exactly what it would mean on an EventBridge
//! rule (operators test their patterns with `aws events test-event-pattern`), and matching
//! must be cheap: a pattern is compiled once, and [`Pattern::matches`] walks the compiled
//! tree against the event without allocating or re-reading the JSON pattern.
//!
//! The semantics follow the EventBridge user guide ("Event patterns in Amazon EventBridge",
//! "Content filtering in Amazon EventBridge event patterns", "Arrays in Amazon EventBridge
//! event patterns", "Matching null values and empty strings…") and, where the guide is
//! silent, Event Ruler (`aws/event-ruler`), the open-source matcher EventBridge runs:
//!
//! - Fields AND, the values listed for a field OR. A nested object descends into the event.
//! - An event value that is an array matches when any of its elements does (nested arrays are
//!   flattened). Where a nested pattern object meets an array of objects, all of its fields
//!   must match within one element (Ruler's "array-consistent" matching). `exists: false`
//!   there is judged per element too (one element without the field matches), where Ruler
//!   judges it against every element until another field has picked one.
//! - Only leaf values (strings, numbers, booleans, null) count as present: a field whose value
//!   is an object, or an array holding no leaf values, is absent. Every filter needs a present
//!   value, except `{"exists": false}`, which needs an absent one.
//! - Exact values keep their JSON type: `"5"` never matches `5`, `""` never matches `null`,
//!   and numbers compare numerically (`300` matches `300.0`, as Ruler adds a numeric-equality
//!   matcher next to the literal one).
//! - `anything-but` matches any present value that is not excluded, whatever its type.
//!
//! Supported filters: exact values, `prefix`, `suffix` (both also with
//! `{"equals-ignore-case": …}`), `equals-ignore-case`, `anything-but` (a string, a number, a
//! list of strings or of numbers, or `prefix`/`suffix`/`equals-ignore-case` of a string or a
//! list of strings), `numeric`, `exists` and `$or`. Not supported (rejected when parsing):
//! `cidr`, `wildcard` and Ruler's `exactly`. Numbers use f64's range, as Ruler does today
//! (older guides quoted ±5.0e9).

use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted; each nested object or `$or` branch is a level. Bounds the
/// recursion of both compiling and matching.
const MAX_DEPTH: usize = 10;
/// Most values (leaf-array elements and `anything-but` list entries) one pattern may hold.
const MAX_VALUES: usize = 1000;
/// EventBridge rejects a pattern whose `$or`s expand to more than this many combinations.
const MAX_COMBINATIONS: u64 = 1000;
/// The key EventBridge reads as an OR of the objects listed under it.
const OR_KEY: &str = "$or";
/// Ruler refuses these as field names inside `$or`: there they are almost always a filter
/// written one level too high.
const RESERVED_IN_OR: &[&str] = &[
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
];

/// A compiled pattern. Serializes as the JSON pattern it was parsed from, so a stored rule
/// round-trips exactly; two patterns are equal when their JSON is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub struct Pattern {
    original: Value,
    root: Fields,
}

/// Why a pattern was refused: `path` names the offending part (`detail.amount`,
/// `detail-type[0]`, `$` for the pattern itself) so a 400 can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PatternError {
    pub path: String,
    pub message: String,
}

impl Pattern {
    /// Validates and compiles `value`: refuses what EventBridge refuses within the supported
    /// subset, and the filters Parley does not evaluate (such as `cidr`), so a rule is
    /// refused when it is created rather than silently never matching.
    pub fn parse(value: &serde_json::Value) -> Result<Pattern, PatternError> {
        Pattern::try_from(value.clone())
    }

    /// Whether `event` — the whole event as EventBridge delivers it to an SQS target, with
    /// `source`, `detail-type`, `detail` and the rest at the top level — matches.
    pub fn matches(&self, event: &serde_json::Value) -> bool {
        self.root.matches_value(Some(event))
    }

    /// The pattern as written.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.original
    }
}

impl PartialEq for Pattern {
    /// The compiled tree is a function of the JSON, so comparing the JSON is enough.
    fn eq(&self, other: &Self) -> bool {
        self.original == other.original
    }
}

impl TryFrom<Value> for Pattern {
    type Error = PatternError;

    fn try_from(original: Value) -> Result<Self, Self::Error> {
        let root = Compiler::default().root(&original)?;
        Ok(Pattern { original, root })
    }
}

impl From<Pattern> for Value {
    fn from(pattern: Pattern) -> Self {
        pattern.original
    }
}

// ---------------------------------------------------------------------------------------------
// The compiled tree
// ---------------------------------------------------------------------------------------------

/// An object of the pattern: every field must match (AND), and one `$or` branch if any.
/// Leaves are kept apart from nested objects so the cheap checks (`source`, `detail-type`)
/// run, and usually fail, before the walk descends into `detail`.
#[derive(Debug, Clone, Default)]
struct Fields {
    leaves: Vec<(Box<str>, Leaf)>,
    nested: Vec<(Box<str>, Fields)>,
    any_of: Vec<Fields>,
}

/// A field's list of acceptable values: matches when any present leaf value of the event's
/// field is accepted, or by presence alone through `exists`.
#[derive(Debug, Clone, Default)]
struct Leaf {
    /// Exact strings, sorted: see [`contains_sorted`].
    strings: Vec<Box<str>>,
    numbers: Vec<Number>,
    null: bool,
    true_: bool,
    false_: bool,
    filters: Vec<Filter>,
    /// `{"exists": true}`: any present value matches.
    if_present: bool,
    /// `{"exists": false}`: the field matches when it has no leaf value.
    if_absent: bool,
}

/// A filter object other than `exists`, which [`Leaf`] folds into two flags.
#[derive(Debug, Clone)]
enum Filter {
    Prefix { text: Box<str>, ignore_case: bool },
    Suffix { text: Box<str>, ignore_case: bool },
    EqualsIgnoreCase(Box<str>),
    Numeric(Range),
    AnythingBut(Exclusion),
}

/// What an `anything-but` refuses; everything else present is accepted.
#[derive(Debug, Clone)]
enum Exclusion {
    Strings(Vec<Box<str>>),
    Numbers(Vec<Number>),
    Prefixes(Vec<Box<str>>),
    Suffixes(Vec<Box<str>>),
    IgnoringCase(Vec<Box<str>>),
}

/// A `numeric` filter: `=` is the range from n to n, both included.
#[derive(Debug, Clone)]
struct Range {
    lower: Bound<f64>,
    upper: Bound<f64>,
}

// ---------------------------------------------------------------------------------------------
// Matching: no allocation, no JSON re-reading
// ---------------------------------------------------------------------------------------------

impl Fields {
    /// Matches the event value found where this object sits in the pattern.
    fn matches_value(&self, value: Option<&Value>) -> bool {
        match value {
            Some(Value::Object(map)) => self.matches(Some(map)),
            Some(Value::Array(items)) => self.matches_any_element(items),
            // Missing, or a leaf where the pattern expects an object: everything below is
            // absent, which only `exists: false` accepts.
            _ => self.matches(None),
        }
    }

    fn matches(&self, map: Option<&Map<String, Value>>) -> bool {
        let get = |key: &str| map.and_then(|map| map.get(key));
        self.leaves.iter().all(|(key, leaf)| leaf.matches(get(key)))
            && self
                .nested
                .iter()
                .all(|(key, fields)| fields.matches_value(get(key)))
            && (self.any_of.is_empty() || self.any_of.iter().any(|branch| branch.matches(map)))
    }

    /// The whole object must match within one element: `{"firstName": ["Anna"],
    /// "lastName": ["Jones"]}` must not match Anna Smith and Peter Jones together.
    fn matches_any_element(&self, items: &[Value]) -> bool {
        let mut saw_object = false;
        let hit = any_object(items, &mut |map| {
            saw_object = true;
            self.matches(Some(map))
        });
        hit || (!saw_object && self.matches(None))
    }
}

impl Leaf {
    fn matches(&self, value: Option<&Value>) -> bool {
        let mut present = false;
        let hit = value.is_some_and(|value| {
            any_leaf_value(value, &mut |scalar| {
                present = true;
                self.accepts(scalar)
            })
        });
        hit || if present {
            self.if_present
        } else {
            self.if_absent
        }
    }

    /// Whether one present leaf value (never an array or object) is among the accepted.
    fn accepts(&self, value: &Value) -> bool {
        let exact = match value {
            Value::String(text) => contains_sorted(&self.strings, text),
            Value::Number(number) => self.numbers.iter().any(|n| same_number(n, number)),
            Value::Bool(true) => self.true_,
            Value::Bool(false) => self.false_,
            Value::Null => self.null,
            Value::Array(_) | Value::Object(_) => false,
        };
        exact || self.filters.iter().any(|filter| filter.accepts(value))
    }
}

impl Filter {
    fn accepts(&self, value: &Value) -> bool {
        match self {
            Filter::AnythingBut(exclusion) => !exclusion.excludes(value),
            Filter::Numeric(range) => match value {
                Value::Number(number) => number.as_f64().is_some_and(|n| range.contains(n)),
                _ => false,
            },
            text_filter => match value {
                Value::String(text) => text_filter.accepts_text(text),
                _ => false,
            },
        }
    }

    /// The string-only filters: prefix, suffix and equals-ignore-case.
    fn accepts_text(&self, text: &str) -> bool {
        match self {
            Filter::Prefix {
                text: prefix,
                ignore_case,
            } => starts_with(text, prefix, *ignore_case),
            Filter::Suffix {
                text: suffix,
                ignore_case,
            } => ends_with(text, suffix, *ignore_case),
            Filter::EqualsIgnoreCase(expected) => equals_ignore_case(text, expected),
            Filter::Numeric(_) | Filter::AnythingBut(_) => false,
        }
    }
}

impl Exclusion {
    /// Values of another type than the excluded ones are never excluded: EventBridge's
    /// `{"anything-but": "stopped"}` accepts `5`, `true` and `null`.
    fn excludes(&self, value: &Value) -> bool {
        match (self, value) {
            (Exclusion::Numbers(numbers), Value::Number(number)) => {
                numbers.iter().any(|n| same_number(n, number))
            }
            (Exclusion::Strings(texts), Value::String(text)) => contains_sorted(texts, text),
            (Exclusion::Prefixes(prefixes), Value::String(text)) => {
                prefixes.iter().any(|p| text.starts_with(&**p))
            }
            (Exclusion::Suffixes(suffixes), Value::String(text)) => {
                suffixes.iter().any(|s| text.ends_with(&**s))
            }
            (Exclusion::IgnoringCase(texts), Value::String(text)) => {
                texts.iter().any(|t| equals_ignore_case(text, t))
            }
            _ => false,
        }
    }
}

impl Range {
    fn contains(&self, n: f64) -> bool {
        let above = match self.lower {
            Bound::Included(low) => n >= low,
            Bound::Excluded(low) => n > low,
            Bound::Unbounded => true,
        };
        let below = match self.upper {
            Bound::Included(high) => n <= high,
            Bound::Excluded(high) => n < high,
            Bound::Unbounded => true,
        };
        above && below
    }
}

/// Calls `accept` on each leaf value of `value` (itself, or the elements of an array,
/// flattening nested arrays; objects hold no leaf value here) until one is accepted.
fn any_leaf_value<F: FnMut(&Value) -> bool>(value: &Value, accept: &mut F) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| any_leaf_value(item, accept)),
        Value::Object(_) => false,
        leaf => accept(leaf),
    }
}

/// Calls `accept` on each object among `items` (flattening nested arrays) until one is
/// accepted.
fn any_object<F: FnMut(&Map<String, Value>) -> bool>(items: &[Value], accept: &mut F) -> bool {
    items.iter().any(|item| match item {
        Value::Object(map) => accept(map),
        Value::Array(inner) => any_object(inner, accept),
        _ => false,
    })
}

/// `set` is sorted when compiled, so long OR lists cost a binary search.
fn contains_sorted(set: &[Box<str>], text: &str) -> bool {
    set.binary_search_by(|candidate| (**candidate).cmp(text))
        .is_ok()
}

/// Numeric equality across JSON's integer and float forms (`5` and `5.0`), exact for
/// integers beyond f64's 2^53 (account numbers, epoch nanoseconds).
fn same_number(a: &Number, b: &Number) -> bool {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a == b;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Case-insensitive comparisons fold each character to lower case on the fly, so matching
/// allocates nothing.
fn folded(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase)
}

fn folded_backwards(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().rev().flat_map(char::to_lowercase)
}

fn equals_ignore_case(text: &str, expected: &str) -> bool {
    folded(text).eq(folded(expected))
}

fn starts_with(text: &str, prefix: &str, ignore_case: bool) -> bool {
    if !ignore_case {
        return text.starts_with(prefix);
    }
    let mut rest = folded(text);
    folded(prefix).all(|c| rest.next() == Some(c))
}

fn ends_with(text: &str, suffix: &str, ignore_case: bool) -> bool {
    if !ignore_case {
        return text.ends_with(suffix);
    }
    let mut rest = folded_backwards(text);
    folded_backwards(suffix).all(|c| rest.next() == Some(c))
}

// ---------------------------------------------------------------------------------------------
// Compiling and validating
// ---------------------------------------------------------------------------------------------

/// Builds the tree, counting values against [`MAX_VALUES`] as it goes.
#[derive(Default)]
struct Compiler {
    values: usize,
}

/// Where the compiler is: the dotted path for messages, and the nesting for the limits.
#[derive(Clone, Copy)]
struct At<'a> {
    path: &'a str,
    depth: usize,
    in_or: bool,
}

fn error(path: &str, message: impl Into<String>) -> PatternError {
    let path = if path.is_empty() { "$" } else { path };
    PatternError {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn field_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn element_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

impl Compiler {
    fn root(&mut self, value: &Value) -> Result<Fields, PatternError> {
        let Value::Object(map) = value else {
            return Err(error("", "an event pattern must be a JSON object"));
        };
        let root = At {
            path: "",
            depth: 1,
            in_or: false,
        };
        let fields = self.object(map, root)?;
        let combinations = fields.combinations();
        if combinations > MAX_COMBINATIONS {
            return Err(error(
                "",
                format!(
                    "its $or lists expand to {combinations} combinations; EventBridge allows \
                     at most {MAX_COMBINATIONS}"
                ),
            ));
        }
        Ok(fields)
    }

    fn object(&mut self, map: &Map<String, Value>, at: At) -> Result<Fields, PatternError> {
        if at.depth > MAX_DEPTH {
            return Err(error(
                at.path,
                format!("the pattern nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        if map.is_empty() {
            return Err(error(
                at.path,
                "an empty object is not a pattern: name at least one field to match",
            ));
        }
        let mut fields = Fields::default();
        for (key, value) in map {
            let path = field_path(at.path, key);
            if key == OR_KEY {
                fields.any_of = self.any_of(value, At { path: &path, ..at })?;
                continue;
            }
            if at.in_or && RESERVED_IN_OR.contains(&key.as_str()) {
                return Err(error(
                    &path,
                    format!(
                        "`{key}` is a filter name, not a field: inside $or, list objects of fields"
                    ),
                ));
            }
            match value {
                Value::Array(items) => {
                    let leaf = self.leaf(items, &path)?;
                    fields.leaves.push((key.as_str().into(), leaf));
                }
                Value::Object(inner) => {
                    let nested = At {
                        path: &path,
                        depth: at.depth + 1,
                        ..at
                    };
                    fields
                        .nested
                        .push((key.as_str().into(), self.object(inner, nested)?));
                }
                _ => {
                    return Err(error(
                        &path,
                        "must be an array of values to match, or an object of nested fields",
                    ))
                }
            }
        }
        Ok(fields)
    }

    fn any_of(&mut self, value: &Value, at: At) -> Result<Vec<Fields>, PatternError> {
        let branches = match value {
            Value::Array(branches) if branches.len() >= 2 => branches,
            _ => return Err(error(at.path, "$or takes an array of at least two objects")),
        };
        let mut compiled = Vec::with_capacity(branches.len());
        for (index, branch) in branches.iter().enumerate() {
            let path = element_path(at.path, index);
            let Value::Object(map) = branch else {
                return Err(error(&path, "each $or branch must be an object of fields"));
            };
            let inside = At {
                path: &path,
                depth: at.depth + 1,
                in_or: true,
            };
            compiled.push(self.object(map, inside)?);
        }
        Ok(compiled)
    }

    fn leaf(&mut self, items: &[Value], path: &str) -> Result<Leaf, PatternError> {
        if items.is_empty() {
            return Err(error(
                path,
                "an empty array matches nothing: list at least one value",
            ));
        }
        let mut leaf = Leaf::default();
        for (index, item) in items.iter().enumerate() {
            let path = element_path(path, index);
            self.count(&path, 1)?;
            match item {
                Value::String(text) => leaf.strings.push(text.as_str().into()),
                Value::Number(number) => leaf.numbers.push(number.clone()),
                Value::Bool(true) => leaf.true_ = true,
                Value::Bool(false) => leaf.false_ = true,
                Value::Null => leaf.null = true,
                Value::Object(filter) => self.filter(filter, &path, &mut leaf)?,
                Value::Array(_) => {
                    return Err(error(
                        &path,
                        "a value to match is a string, number, boolean, null or filter object, \
                         not an array",
                    ))
                }
            }
        }
        sort_set(&mut leaf.strings);
        Ok(leaf)
    }

    /// Compiles one filter object into `leaf`.
    fn filter(
        &mut self,
        filter: &Map<String, Value>,
        path: &str,
        leaf: &mut Leaf,
    ) -> Result<(), PatternError> {
        let (name, operand) = single_entry(filter).ok_or_else(|| {
            error(
                path,
                "a filter object has exactly one key, such as {\"prefix\": \"eu-\"}",
            )
        })?;
        let compiled = match name {
            "exists" => {
                let Value::Bool(exists) = operand else {
                    return Err(error(path, "exists: takes true or false"));
                };
                if *exists {
                    leaf.if_present = true;
                } else {
                    leaf.if_absent = true;
                }
                return Ok(());
            }
            "prefix" => affix(operand, path, "prefix")
                .map(|(text, ignore_case)| Filter::Prefix { text, ignore_case })?,
            "suffix" => affix(operand, path, "suffix")
                .map(|(text, ignore_case)| Filter::Suffix { text, ignore_case })?,
            "equals-ignore-case" => match operand {
                Value::String(text) => Filter::EqualsIgnoreCase(text.as_str().into()),
                _ => return Err(error(path, "equals-ignore-case: takes a string")),
            },
            "numeric" => Filter::Numeric(numeric(operand, path)?),
            "anything-but" => Filter::AnythingBut(self.anything_but(operand, path)?),
            "cidr" | "wildcard" | "exactly" => {
                return Err(error(
                    path,
                    format!("`{name}` is an EventBridge filter Parley does not support"),
                ))
            }
            unknown => {
                return Err(error(
                    path,
                    format!(
                        "unknown filter `{unknown}`; expected prefix, suffix, equals-ignore-case, \
                         anything-but, numeric or exists"
                    ),
                ))
            }
        };
        leaf.filters.push(compiled);
        Ok(())
    }

    fn anything_but(&mut self, operand: &Value, path: &str) -> Result<Exclusion, PatternError> {
        match operand {
            Value::String(text) => Ok(Exclusion::Strings(vec![text.as_str().into()])),
            Value::Number(number) => Ok(Exclusion::Numbers(vec![number.clone()])),
            Value::Array(items) => self.exclusion_list(items, path),
            Value::Object(inner) => self.exclusion_filter(inner, path),
            _ => Err(error(
                path,
                "anything-but: takes a string, a number, a list of strings or of numbers, or \
                 {\"prefix\"|\"suffix\"|\"equals-ignore-case\": …}",
            )),
        }
    }

    /// `{"anything-but": [...]}`: all strings or all numbers, as EventBridge requires.
    fn exclusion_list(&mut self, items: &[Value], path: &str) -> Result<Exclusion, PatternError> {
        self.count(path, items.len())?;
        if let Some(texts) = items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
            if !texts.is_empty() {
                let mut texts = texts.into_iter().map(Into::into).collect();
                sort_set(&mut texts);
                return Ok(Exclusion::Strings(texts));
            }
        }
        if let Some(numbers) = items.iter().map(as_number).collect::<Option<Vec<_>>>() {
            if !numbers.is_empty() {
                return Ok(Exclusion::Numbers(numbers.into_iter().cloned().collect()));
            }
        }
        Err(error(
            path,
            "anything-but: a list must hold only strings or only numbers, and at least one",
        ))
    }

    /// `{"anything-but": {"prefix" | "suffix" | "equals-ignore-case": …}}`.
    fn exclusion_filter(
        &mut self,
        inner: &Map<String, Value>,
        path: &str,
    ) -> Result<Exclusion, PatternError> {
        let Some((name, operand)) = single_entry(inner) else {
            return Err(error(
                path,
                "anything-but: an object takes exactly one of prefix, suffix or equals-ignore-case",
            ));
        };
        if !matches!(name, "prefix" | "suffix" | "equals-ignore-case") {
            return Err(error(
                path,
                format!(
                    "anything-but: `{name}` is not supported; use prefix, suffix or \
                     equals-ignore-case"
                ),
            ));
        }
        let texts = self.exclusion_texts(operand, path, name)?;
        // An empty prefix or suffix would exclude every string: EventBridge refuses it.
        if name != "equals-ignore-case" && texts.iter().any(|text| text.is_empty()) {
            return Err(error(
                path,
                format!("anything-but: {name} must not be empty"),
            ));
        }
        Ok(match name {
            "prefix" => Exclusion::Prefixes(texts),
            "suffix" => Exclusion::Suffixes(texts),
            _ => Exclusion::IgnoringCase(texts),
        })
    }

    /// The operand of an anything-but's prefix/suffix/equals-ignore-case: a string or a
    /// non-empty list of strings.
    fn exclusion_texts(
        &mut self,
        operand: &Value,
        path: &str,
        name: &str,
    ) -> Result<Vec<Box<str>>, PatternError> {
        let wrong = || {
            error(
                path,
                format!("anything-but: {name} takes a string or a non-empty list of strings"),
            )
        };
        match operand {
            Value::String(text) => Ok(vec![text.as_str().into()]),
            Value::Array(items) if !items.is_empty() => {
                self.count(path, items.len())?;
                items
                    .iter()
                    .map(|item| item.as_str().map(Into::into).ok_or_else(wrong))
                    .collect()
            }
            _ => Err(wrong()),
        }
    }

    fn count(&mut self, path: &str, values: usize) -> Result<(), PatternError> {
        self.values += values;
        if self.values > MAX_VALUES {
            return Err(error(
                path,
                format!(
                    "a pattern may hold at most {MAX_VALUES} values; split it into several rules"
                ),
            ));
        }
        Ok(())
    }
}

impl Fields {
    /// How many plain patterns the `$or`s expand to (EventBridge's "rule combinations"):
    /// branches add up, sibling objects multiply.
    fn combinations(&self) -> u64 {
        let nested = self.nested.iter().fold(1u64, |product, (_, fields)| {
            product.saturating_mul(fields.combinations())
        });
        let branches = if self.any_of.is_empty() {
            1
        } else {
            self.any_of.iter().fold(0u64, |sum, branch| {
                sum.saturating_add(branch.combinations())
            })
        };
        nested.saturating_mul(branches)
    }
}

/// Prepares a string set for [`contains_sorted`].
fn sort_set(set: &mut Vec<Box<str>>) {
    set.sort_unstable();
    set.dedup();
}

fn single_entry(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((name, operand)), None) => Some((name.as_str(), operand)),
        _ => None,
    }
}

fn as_number(value: &Value) -> Option<&Number> {
    match value {
        Value::Number(number) => Some(number),
        _ => None,
    }
}

/// The operand of `prefix`/`suffix`: a string, or `{"equals-ignore-case": "…"}`.
fn affix(operand: &Value, path: &str, name: &str) -> Result<(Box<str>, bool), PatternError> {
    let wrong = || {
        error(
            path,
            format!("{name}: takes a string or {{\"equals-ignore-case\": \"…\"}}"),
        )
    };
    match operand {
        Value::String(text) => Ok((text.as_str().into(), false)),
        Value::Object(inner) => match single_entry(inner) {
            Some(("equals-ignore-case", Value::String(text))) => Ok((text.as_str().into(), true)),
            _ => Err(wrong()),
        },
        _ => Err(wrong()),
    }
}

/// `["op", n]` or `[">"|">=", low, "<"|"<=", high]`, as EventBridge accepts them.
fn numeric(operand: &Value, path: &str) -> Result<Range, PatternError> {
    let wrong = |detail: &str| error(path, format!("numeric: {detail}"));
    let Value::Array(terms) = operand else {
        return Err(wrong("takes an array such as [\">\", 0, \"<=\", 5]"));
    };
    match terms.as_slice() {
        [op, n] => {
            let (op, n) = comparison(op, n).map_err(|detail| wrong(&detail))?;
            Ok(match op {
                "=" => Range {
                    lower: Bound::Included(n),
                    upper: Bound::Included(n),
                },
                ">" | ">=" => Range {
                    lower: lower_bound(op, n),
                    upper: Bound::Unbounded,
                },
                _ => Range {
                    lower: Bound::Unbounded,
                    upper: upper_bound(op, n),
                },
            })
        }
        [low_op, low, high_op, high] => {
            let (low_op, low) = comparison(low_op, low).map_err(|detail| wrong(&detail))?;
            let (high_op, high) = comparison(high_op, high).map_err(|detail| wrong(&detail))?;
            if !matches!(low_op, ">" | ">=") || !matches!(high_op, "<" | "<=") {
                return Err(wrong(
                    "a range is a lower bound (> or >=) followed by an upper bound (< or <=)",
                ));
            }
            if low >= high {
                return Err(wrong("the lower bound must be below the upper bound"));
            }
            Ok(Range {
                lower: lower_bound(low_op, low),
                upper: upper_bound(high_op, high),
            })
        }
        _ => Err(wrong(
            "takes one comparison [op, n] or a range [\">\", low, \"<=\", high]",
        )),
    }
}

/// One `op, n` pair of a numeric filter.
fn comparison<'a>(op: &'a Value, n: &Value) -> Result<(&'a str, f64), String> {
    let op = match op.as_str() {
        Some(op @ ("=" | "<" | "<=" | ">" | ">=")) => op,
        _ => return Err(format!("unknown operator {op}; expected =, <, <=, > or >=")),
    };
    let n = n
        .as_f64()
        .ok_or_else(|| format!("{op} takes a number, not {n}"))?;
    Ok((op, n))
}

fn lower_bound(op: &str, n: f64) -> Bound<f64> {
    if op == ">=" {
        Bound::Included(n)
    } else {
        Bound::Excluded(n)
    }
}

fn upper_bound(op: &str, n: f64) -> Bound<f64> {
    if op == "<=" {
        Bound::Included(n)
    } else {
        Bound::Excluded(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(pattern: Value) -> Pattern {
        Pattern::parse(&pattern).unwrap_or_else(|e| panic!("{pattern} should parse: {e}"))
    }

    fn matches(pattern: Value, event: Value) -> bool {
        compile(pattern).matches(&event)
    }

    fn refused(pattern: Value) -> PatternError {
        match Pattern::parse(&pattern) {
            Ok(_) => panic!("{pattern} should be refused"),
            Err(e) => e,
        }
    }

    /// Asserts `pattern` is refused at `path` with a message containing `needle`.
    fn assert_refused(pattern: Value, path: &str, needle: &str) {
        let e = refused(pattern);
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(needle), "{e} should mention {needle:?}");
    }

    /// A Parley event as EventBridge hands it to the SQS target.
    fn parley_event(detail_type: &str, detail: Value) -> Value {
        json!({
            "version": "0",
            "id": "0d6a1d3c-1111-2222-3333-444455556666",
            "detail-type": detail_type,
            "source": "parley",
            "account": "123456789012",
            "time": "2025-03-01T10:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail
        })
    }

    // -- "Event patterns in Amazon EventBridge" (EventBridge user guide) -----------------------

    /// The page's EC2 event, shared by several of its examples.
    fn ec2_terminated() -> Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "account": "111122223333",
            "time": "2017-12-22T18:43:48Z",
            "region": "us-west-1",
            "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
            "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"}
        })
    }

    #[test]
    fn doc_event_patterns_instance_termination() {
        // "Event patterns in Amazon EventBridge": this pattern processes all EC2
        // instance-termination events, and matches the page's example event.
        let pattern = json!({
            "source": ["aws.ec2"],
            "detail-type": ["EC2 Instance State-change Notification"],
            "detail": {"state": ["terminated"]}
        });
        assert!(matches(pattern.clone(), ec2_terminated()));
        let mut running = ec2_terminated();
        running["detail"]["state"] = json!("running");
        assert!(!matches(pattern, running));
    }

    #[test]
    fn doc_event_patterns_match_values_or() {
        // "Event patterns in Amazon EventBridge", Match values: events from EC2 or Fargate.
        let pattern = json!({"source": ["aws.ec2", "aws.fargate"]});
        assert!(matches(pattern.clone(), ec2_terminated()));
        let mut fargate = ec2_terminated();
        fargate["source"] = json!("aws.fargate");
        assert!(matches(pattern.clone(), fargate));
        let mut s3 = ec2_terminated();
        s3["source"] = json!("aws.s3");
        assert!(!matches(pattern, s3));
    }

    #[test]
    fn doc_event_patterns_every_named_field_must_exist() {
        // "Event patterns in Amazon EventBridge": the event must contain all the field names
        // listed in the pattern, with the same nesting.
        let pattern = json!({"source": ["aws.ec2"], "detail": {"reason": ["user"]}});
        assert!(!matches(pattern, ec2_terminated()));
        let nested_elsewhere = json!({"source": ["aws.ec2"], "state": ["terminated"]});
        assert!(!matches(nested_elsewhere, ec2_terminated()));
    }

    fn autoscaling_launch() -> Value {
        json!({
            "version": "0",
            "id": "3e3c153a-8339-4e30-8c35-687ebef853fe",
            "detail-type": "EC2 Instance Launch Successful",
            "source": "aws.autoscaling",
            "account": "123456789012",
            "time": "2015-11-11T21:31:47Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {"eventVersion": "", "responseElements": null}
        })
    }

    #[test]
    fn doc_event_patterns_field_matching_null() {
        // "Event patterns in Amazon EventBridge", Field matching: `responseElements: [null]`.
        let pattern = json!({
            "source": ["aws.autoscaling"],
            "detail-type": ["EC2 Instance Launch Successful"],
            "detail": {"responseElements": [null]}
        });
        assert!(matches(pattern, autoscaling_launch()));
    }

    #[test]
    fn doc_event_patterns_value_matching_macie() {
        // "Event patterns in Amazon EventBridge", Value matching: the (truncated) Macie finding
        // matches a severity score of 1 and a count of 2.
        let macie = json!({
            "version": "0",
            "id": "0948ba87-d3b8-c6d4-f2da-732a1example",
            "detail-type": "Macie Finding",
            "source": "aws.macie",
            "account": "123456789012",
            "time": "2021-04-29T23:12:15Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "schemaVersion": "1.0",
                "id": "64b917aa-3843-014c-91d8-937ffexample",
                "type": "Policy:IAMUser/S3BucketEncryptionDisabled",
                "severity": {"score": 1, "description": "Low"},
                "count": 2
            }
        });
        let pattern = json!({
            "source": ["aws.macie"],
            "detail-type": ["Macie Finding"],
            "detail": {"severity": {"score": [1]}, "count": [2]}
        });
        assert!(matches(pattern.clone(), macie.clone()));
        let mut three = macie;
        three["detail"]["count"] = json!(3);
        assert!(!matches(pattern, three));
    }

    // -- "Matching null values and empty strings in Amazon EventBridge event patterns" ---------

    #[test]
    fn doc_null_values_and_empty_strings() {
        let event = autoscaling_launch();
        assert!(matches(
            json!({"detail": {"eventVersion": [""]}}),
            event.clone()
        ));
        assert!(matches(
            json!({"detail": {"responseElements": [null]}}),
            event.clone()
        ));
        // "Null values and empty strings are not interchangeable in pattern matching."
        assert!(!matches(
            json!({"detail": {"responseElements": [""]}}),
            event.clone()
        ));
        assert!(!matches(json!({"detail": {"eventVersion": [null]}}), event));
    }

    // -- "Arrays in Amazon EventBridge event patterns" ----------------------------------------

    #[test]
    fn doc_arrays_intersection() {
        // The pattern's first ARN is the event's second: the intersection is non-empty.
        let pattern = json!({"resources": [
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"
        ]});
        let event = json!({"resources": [
            "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:autoScalingGroupName/ASGTerminate",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"
        ]});
        assert!(matches(pattern.clone(), event));
        let disjoint = json!({"resources": ["arn:aws:ec2:us-east-1:999999999999:instance/i-0"]});
        assert!(!matches(pattern.clone(), disjoint));
        assert!(!matches(pattern, json!({"resources": []})));
    }

    // -- "Content filtering in Amazon EventBridge event patterns" -----------------------------

    #[test]
    fn doc_content_filtering_prefix() {
        let pattern = json!({"time": [{"prefix": "2017-10-02"}]});
        assert!(matches(
            pattern.clone(),
            json!({"time": "2017-10-02T18:43:48Z"})
        ));
        assert!(!matches(pattern, json!({"time": "2017-10-03T18:43:48Z"})));
    }

    #[test]
    fn doc_content_filtering_prefix_ignoring_case() {
        // Matches values starting with EventB, but also EVENTB, eventb or any other casing.
        let pattern =
            json!({"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}});
        for service in ["EventBridge", "EVENTBRIDGE", "eventbus"] {
            assert!(
                matches(pattern.clone(), json!({"detail": {"service": service}})),
                "{service}"
            );
        }
        assert!(!matches(pattern, json!({"detail": {"service": "Lambda"}})));
    }

    #[test]
    fn doc_content_filtering_suffix() {
        let pattern = json!({"FileName": [{"suffix": ".png"}]});
        assert!(matches(pattern.clone(), json!({"FileName": "cat.png"})));
        assert!(!matches(pattern.clone(), json!({"FileName": "cat.PNG"})));
        assert!(!matches(pattern, json!({"FileName": "cat.png.gz"})));
        // ... and with equals-ignore-case, .PNG too.
        let folded = json!({"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}});
        assert!(matches(
            folded.clone(),
            json!({"detail": {"FileName": "CAT.PNG"}})
        ));
        assert!(!matches(folded, json!({"detail": {"FileName": "cat.jpg"}})));
    }

    #[test]
    fn doc_content_filtering_anything_but_string_and_number() {
        let state = json!({"detail": {"state": [{"anything-but": "initializing"}]}});
        assert!(matches(
            state.clone(),
            json!({"detail": {"state": "running"}})
        ));
        assert!(!matches(
            state,
            json!({"detail": {"state": "initializing"}})
        ));
        let limit = json!({"detail": {"x-limit": [{"anything-but": 123}]}});
        assert!(matches(limit.clone(), json!({"detail": {"x-limit": 124}})));
        assert!(!matches(limit.clone(), json!({"detail": {"x-limit": 123}})));
        assert!(!matches(limit, json!({"detail": {"x-limit": 123.0}})));
    }

    #[test]
    fn doc_content_filtering_anything_but_lists() {
        let states = json!({"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}});
        assert!(matches(
            states.clone(),
            json!({"detail": {"state": "running"}})
        ));
        assert!(!matches(
            states.clone(),
            json!({"detail": {"state": "stopped"}})
        ));
        assert!(!matches(states, json!({"detail": {"state": "overloaded"}})));
        let limits = json!({"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}});
        assert!(matches(
            limits.clone(),
            json!({"detail": {"x-limit": 301.8}})
        ));
        assert!(!matches(limits, json!({"detail": {"x-limit": 200}})));
    }

    #[test]
    fn doc_content_filtering_anything_but_prefix() {
        // Matches any event that doesn't have the prefix "init" in the state field.
        let pattern = json!({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}});
        assert!(matches(
            pattern.clone(),
            json!({"detail": {"state": "running"}})
        ));
        assert!(!matches(
            pattern,
            json!({"detail": {"state": "initializing"}})
        ));
    }

    /// Event Ruler's README sample event (the one its content-filtering examples use).
    fn ruler_sample() -> Value {
        json!({
            "version": "0",
            "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "account": "012345679012",
            "time": "2017-10-02T16:24:49Z",
            "region": "us-east-1",
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
            "detail": {
                "c-count": 5,
                "d-count": 3,
                "x-limit": 301.8,
                "source-ip": "10.0.0.33",
                "instance-id": "i-000000aaaaaa00000",
                "state": "running"
            }
        })
    }

    #[test]
    fn doc_content_filtering_numeric() {
        // Only matches events that are true for all three fields; 3.018e2 is 301.8.
        let pattern = json!({"detail": {
            "c-count": [{"numeric": [">", 0, "<=", 5]}],
            "d-count": [{"numeric": ["<", 10]}],
            "x-limit": [{"numeric": ["=", 3.018e2]}]
        }});
        assert!(matches(pattern.clone(), ruler_sample()));
        let mut zero = ruler_sample();
        zero["detail"]["c-count"] = json!(0);
        assert!(!matches(pattern.clone(), zero));
        let mut ten = ruler_sample();
        ten["detail"]["d-count"] = json!(10);
        assert!(!matches(pattern, ten));
    }

    #[test]
    fn doc_content_filtering_exists_true() {
        let pattern = json!({"detail": {"state": [{"exists": true}]}});
        // "The preceding event pattern matches the following event."
        let pending = json!({
            "version": "0",
            "id": "7bf73129-1428-4cd3-a780-95db273d1602",
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "account": "123456789012",
            "time": "2015-11-11T21:29:54Z",
            "region": "us-east-1",
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
            "detail": {"instance-id": "i-abcd1111", "state": "pending"}
        });
        assert!(matches(pattern.clone(), pending));
        // "... does NOT match the following event because it doesn't have a detail.state field."
        let without_state = json!({
            "detail-type": ["EC2 Instance State-change Notification"],
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341"],
            "detail": {"c-count": {"c1": 100}}
        });
        assert!(!matches(pattern, without_state));
    }

    #[test]
    fn doc_content_filtering_exists_false_only_on_leaves() {
        // The 2021 revision of the page (and Ruler's README): matches any event without a
        // detail.c-count field, and also one whose c-count is an object, "because c-count
        // isn't a leaf node". (The page's second event misses a comma; fixed here.)
        let pattern = json!({"detail": {"c-count": [{"exists": false}]}});
        let without = json!({
            "detail-type": ["EC2 Instance State-change Notification"],
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341"],
            "detail": {"state": ["initializing", "running"]}
        });
        assert!(matches(pattern.clone(), without));
        let object = json!({
            "detail-type": ["EC2 Instance State-change Notification"],
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341"],
            "detail": {"state": ["initializing", "running"], "c-count": {"c1": 100}}
        });
        assert!(matches(pattern.clone(), object));
        assert!(!matches(pattern, ruler_sample()));
    }

    #[test]
    fn doc_content_filtering_equals_ignore_case() {
        // The page's event gives detail-type as an array; array semantics apply.
        let pattern = json!({"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]});
        let event = json!({
            "detail-type": ["EC2 Instance State-change Notification"],
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341"],
            "detail": {"c-count": {"c1": 100}}
        });
        assert!(matches(pattern.clone(), event));
        assert!(!matches(
            pattern,
            json!({"detail-type": "EC2 Spot Instance Interruption"})
        ));
    }

    #[test]
    fn doc_content_filtering_complex_example() {
        let pattern = json!({
            "time": [{"prefix": "2017-10-02"}],
            "detail": {
                "state": [{"anything-but": "initializing"}],
                "c-count": [{"numeric": [">", 0, "<=", 5]}],
                "d-count": [{"numeric": ["<", 10]}],
                "x-limit": [{"anything-but": [100, 200, 300]}]
            }
        });
        assert!(matches(pattern.clone(), ruler_sample()));
        let mut initializing = ruler_sample();
        initializing["detail"]["state"] = json!("initializing");
        assert!(!matches(pattern, initializing));
    }

    #[test]
    fn doc_content_filtering_repeated_key_last_wins() {
        // "If you include a key more than once the last reference will be the one used."
        let pattern: Value = serde_json::from_str(
            r#"{"detail": {"location": [{"prefix": "us-"}], "location": [{"anything-but": "us-east"}]}}"#,
        )
        .unwrap();
        assert!(matches(
            pattern.clone(),
            json!({"detail": {"location": "eu-west"}})
        ));
        assert!(!matches(
            pattern,
            json!({"detail": {"location": "us-east"}})
        ));
    }

    #[test]
    fn doc_content_filtering_or() {
        // Matches if c-count is in (0, 5], or d-count < 10, or x-limit = 301.8.
        let pattern = json!({"detail": {"$or": [
            {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
            {"d-count": [{"numeric": ["<", 10]}]},
            {"x-limit": [{"numeric": ["=", 3.018e2]}]}
        ]}});
        assert!(matches(pattern.clone(), json!({"detail": {"d-count": 3}})));
        assert!(matches(
            pattern.clone(),
            json!({"detail": {"x-limit": 301.8}})
        ));
        assert!(!matches(
            pattern.clone(),
            json!({"detail": {"c-count": 6, "d-count": 11}})
        ));
        assert!(!matches(pattern, json!({"detail": {}})));
    }

    #[test]
    fn doc_content_filtering_or_combination_limit() {
        // More than 1000 combinations (10 × 10 × 11 here) is an InvalidEventPatternException.
        let branches =
            |field: &str, n: usize| -> Value { (0..n).map(|i| json!({ field: [i] })).collect() };
        let fine = json!({"a": {"$or": branches("x", 10)}, "b": {"$or": branches("y", 10)}});
        assert!(Pattern::parse(&fine).is_ok());
        let too_many = json!({
            "a": {"$or": branches("x", 10)},
            "b": {"$or": branches("y", 10)},
            "c": {"$or": branches("z", 11)}
        });
        assert_refused(too_many, "$", "1100 combinations");
    }

    // -- Event Ruler README, "JSON Array Matching" --------------------------------------------

    #[test]
    fn ruler_array_consistent_matching() {
        let event = json!({"employees": [
            {"firstName": "John", "lastName": "Doe"},
            {"firstName": "Anna", "lastName": "Smith"},
            {"firstName": "Peter", "lastName": "Jones"}
        ]});
        assert!(matches(
            json!({"employees": {"firstName": ["Anna"]}}),
            event.clone()
        ));
        let across_elements = json!({"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}});
        assert!(!matches(across_elements, event.clone()));
        let same_element = json!({"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}});
        assert!(matches(same_element, event));
        // Multi-level arrays are flattened.
        let nested = json!({"employees": [
            [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}],
            [{"firstName": "Peter", "lastName": "Jones"}]
        ]});
        assert!(matches(
            json!({"employees": {"firstName": ["Peter"]}}),
            nested
        ));
    }

    // -- Exact values ------------------------------------------------------------------------

    #[test]
    fn strings_are_exact_and_case_sensitive() {
        let pattern = json!({"source": ["parley"], "detail-type": ["sms.received"]});
        let event = parley_event("sms.received", json!({}));
        assert!(matches(pattern.clone(), event));
        assert!(!matches(
            pattern.clone(),
            parley_event("SMS.received", json!({}))
        ));
        assert!(!matches(pattern, parley_event("sms.received ", json!({}))));
    }

    #[test]
    fn numbers_compare_numerically_but_never_as_strings() {
        let five = json!({"detail": {"n": [5]}});
        assert!(matches(five.clone(), json!({"detail": {"n": 5}})));
        assert!(matches(five.clone(), json!({"detail": {"n": 5.0}})));
        assert!(matches(five.clone(), json!({"detail": {"n": 5e0}})));
        assert!(!matches(five.clone(), json!({"detail": {"n": "5"}})));
        assert!(!matches(five, json!({"detail": {"n": 5.000001}})));
        assert!(!matches(
            json!({"detail": {"n": ["5"]}}),
            json!({"detail": {"n": 5}})
        ));
        assert!(matches(json!({"n": [-0.5]}), json!({"n": -5e-1})));
        // Integers beyond 2^53 compare exactly.
        let big = json!({"n": [9007199254740993u64]});
        assert!(matches(big.clone(), json!({"n": 9007199254740993u64})));
        assert!(!matches(big, json!({"n": 9007199254740992u64})));
    }

    #[test]
    fn booleans_and_null_keep_their_type() {
        assert!(matches(json!({"b": [true]}), json!({"b": true})));
        assert!(!matches(json!({"b": [true]}), json!({"b": false})));
        assert!(matches(json!({"b": [false]}), json!({"b": false})));
        assert!(!matches(json!({"b": [true]}), json!({"b": "true"})));
        assert!(!matches(json!({"b": ["true"]}), json!({"b": true})));
        assert!(!matches(json!({"b": [null]}), json!({"b": "null"})));
        assert!(!matches(json!({"b": [false]}), json!({"b": null})));
    }

    #[test]
    fn null_is_not_missing() {
        let pattern = json!({"detail": {"keyword": [null]}});
        assert!(matches(
            pattern.clone(),
            parley_event("sms.received", json!({"keyword": null}))
        ));
        assert!(!matches(
            pattern.clone(),
            parley_event("sms.received", json!({}))
        ));
        assert!(!matches(pattern, json!({"source": "parley"})));
    }

    #[test]
    fn long_string_lists_are_searched() {
        let names: Vec<String> = (0..500).map(|i| format!("tenant-{i:03}")).collect();
        let pattern = compile(json!({"detail": {"tenant_id": names}}));
        assert!(pattern.matches(&json!({"detail": {"tenant_id": "tenant-000"}})));
        assert!(pattern.matches(&json!({"detail": {"tenant_id": "tenant-321"}})));
        assert!(pattern.matches(&json!({"detail": {"tenant_id": "tenant-499"}})));
        assert!(!pattern.matches(&json!({"detail": {"tenant_id": "tenant-500"}})));
    }

    #[test]
    fn mixed_values_in_one_list() {
        let pattern =
            compile(json!({"v": ["a", 1, null, {"prefix": "x-"}, {"numeric": [">", 100]}]}));
        for hit in [
            json!("a"),
            json!(1.0),
            json!(null),
            json!("x-1"),
            json!(101),
        ] {
            assert!(pattern.matches(&json!({ "v": hit })), "{hit}");
        }
        for miss in [json!("b"), json!(2), json!(false), json!("y-1"), json!(100)] {
            assert!(!pattern.matches(&json!({ "v": miss })), "{miss}");
        }
    }

    // -- Filters -----------------------------------------------------------------------------

    #[test]
    fn prefix_and_suffix_only_match_strings() {
        let prefix = json!({"v": [{"prefix": "12"}]});
        assert!(matches(prefix.clone(), json!({"v": "123"})));
        assert!(!matches(prefix.clone(), json!({"v": 123})));
        assert!(!matches(prefix, json!({"v": "0123"})));
        let suffix = json!({"v": [{"suffix": "23"}]});
        assert!(matches(suffix.clone(), json!({"v": "123"})));
        assert!(!matches(suffix.clone(), json!({"v": 123})));
        assert!(!matches(suffix, json!({"v": null})));
        assert!(matches(json!({"v": [{"prefix": ""}]}), json!({"v": ""})));
    }

    #[test]
    fn equals_ignore_case_folds_unicode() {
        let pattern = json!({"v": [{"equals-ignore-case": "Été"}]});
        assert!(matches(pattern.clone(), json!({"v": "ÉTÉ"})));
        assert!(matches(pattern.clone(), json!({"v": "été"})));
        assert!(!matches(pattern.clone(), json!({"v": "ete"})));
        assert!(!matches(pattern, json!({"v": "étés"})));
        let prefix = json!({"v": [{"prefix": {"equals-ignore-case": "ÉT"}}]});
        assert!(matches(prefix.clone(), json!({"v": "été"})));
        assert!(!matches(prefix, json!({"v": "é"})));
        let suffix = json!({"v": [{"suffix": {"equals-ignore-case": "TÉ"}}]});
        assert!(matches(suffix.clone(), json!({"v": "été"})));
        assert!(!matches(suffix, json!({"v": "é"})));
    }

    #[test]
    fn anything_but_needs_a_present_value_of_any_type() {
        let pattern = json!({"detail": {"status": [{"anything-but": "failed"}]}});
        assert!(!matches(pattern.clone(), json!({"detail": {}})));
        assert!(!matches(
            pattern.clone(),
            json!({"detail": {"status": {"code": 1}}})
        ));
        // Event Ruler: another type is never among the excluded strings.
        assert!(matches(
            pattern.clone(),
            json!({"detail": {"status": null}})
        ));
        assert!(matches(pattern, json!({"detail": {"status": 5}})));
        let numbers = json!({"v": [{"anything-but": [100]}]});
        assert!(matches(numbers.clone(), json!({"v": "100"})));
        assert!(!matches(numbers, json!({"v": 1e2})));
    }

    #[test]
    fn anything_but_suffix_ignore_case_and_prefix_lists() {
        let suffix = json!({"v": [{"anything-but": {"suffix": ".png"}}]});
        assert!(matches(suffix.clone(), json!({"v": "a.jpg"})));
        assert!(!matches(suffix, json!({"v": "a.png"})));
        let folded =
            json!({"v": [{"anything-but": {"equals-ignore-case": ["Stopped", "OverLoaded"]}}]});
        assert!(matches(folded.clone(), json!({"v": "running"})));
        assert!(!matches(folded.clone(), json!({"v": "STOPPED"})));
        assert!(!matches(folded, json!({"v": "overloaded"})));
        let prefixes = json!({"v": [{"anything-but": {"prefix": ["init", "error"]}}]});
        assert!(matches(prefixes.clone(), json!({"v": "running"})));
        assert!(!matches(prefixes, json!({"v": "error: disk"})));
    }

    #[test]
    fn numeric_operators_and_bounds() {
        let check =
            |filter: Value, n: f64| matches(json!({"v": [{"numeric": filter}]}), json!({"v": n}));
        assert!(check(json!(["=", 10]), 10.0));
        assert!(!check(json!(["=", 10]), 10.5));
        assert!(check(json!(["<", 10]), 9.99));
        assert!(!check(json!(["<", 10]), 10.0));
        assert!(check(json!(["<=", 10]), 10.0));
        assert!(!check(json!(["<=", 10]), 10.01));
        assert!(check(json!([">", 10]), 10.01));
        assert!(!check(json!([">", 10]), 10.0));
        assert!(check(json!([">=", 10]), 10.0));
        assert!(!check(json!([">=", 10]), 9.99));
        assert!(check(json!([">=", 0, "<", 1]), 0.0));
        assert!(!check(json!([">=", 0, "<", 1]), 1.0));
        assert!(check(json!([">", -1.5, "<=", 1e3]), 1000.0));
        assert!(!check(json!([">", -1.5, "<=", 1e3]), -1.5));
    }

    #[test]
    fn numeric_never_matches_strings() {
        let pattern = json!({"detail": {"amount": [{"numeric": [">", 0]}]}});
        assert!(matches(pattern.clone(), json!({"detail": {"amount": 12}})));
        assert!(!matches(
            pattern.clone(),
            json!({"detail": {"amount": "12"}})
        ));
        assert!(!matches(
            pattern.clone(),
            json!({"detail": {"amount": null}})
        ));
        assert!(!matches(pattern, json!({"detail": {}})));
    }

    #[test]
    fn exists_sees_leaf_values_only() {
        let present = json!({"detail": {"x": [{"exists": true}]}});
        let absent = json!({"detail": {"x": [{"exists": false}]}});
        for (value, is_present) in [
            (json!("a"), true),
            (json!(null), true),
            (json!(0), true),
            (json!([1, 2]), true),
            (json!([]), false),
            (json!({}), false),
            (json!([{"y": 1}]), false),
        ] {
            let event = json!({"detail": {"x": value}});
            assert_eq!(
                matches(present.clone(), event.clone()),
                is_present,
                "{value}"
            );
            assert_eq!(matches(absent.clone(), event), !is_present, "{value}");
        }
        assert!(!matches(present.clone(), json!({"detail": {}})));
        assert!(matches(absent.clone(), json!({"detail": {}})));
        // A missing (or non-object) parent leaves every field under it absent.
        assert!(matches(absent.clone(), json!({"source": "parley"})));
        assert!(matches(absent, json!({"detail": "text"})));
        assert!(!matches(present, json!({"source": "parley"})));
    }

    #[test]
    fn exists_false_or_a_value() {
        let pattern = json!({"detail": {"workflow_type": ["dunning", {"exists": false}]}});
        assert!(matches(pattern.clone(), json!({"detail": {}})));
        assert!(matches(
            pattern.clone(),
            json!({"detail": {"workflow_type": "dunning"}})
        ));
        assert!(!matches(
            pattern,
            json!({"detail": {"workflow_type": "welcome"}})
        ));
    }

    // -- Event arrays ------------------------------------------------------------------------

    #[test]
    fn event_arrays_match_when_any_element_does() {
        let event = json!({"detail": {"tags": ["vip", "late", 3], "media": []}});
        assert!(matches(
            json!({"detail": {"tags": ["late"]}}),
            event.clone()
        ));
        assert!(matches(
            json!({"detail": {"tags": [{"prefix": "vi"}]}}),
            event.clone()
        ));
        assert!(matches(
            json!({"detail": {"tags": [{"numeric": [">", 2]}]}}),
            event.clone()
        ));
        assert!(!matches(
            json!({"detail": {"tags": ["new"]}}),
            event.clone()
        ));
        assert!(!matches(
            json!({"detail": {"media": [{"prefix": ""}]}}),
            event.clone()
        ));
        // Any element that is not excluded is enough (as in SNS's and Ruler's docs).
        assert!(matches(
            json!({"detail": {"tags": [{"anything-but": "vip"}]}}),
            event.clone()
        ));
        let all_excluded = json!({"detail": {"tags": [{"anything-but": ["vip", "late"]}]}});
        assert!(!matches(
            all_excluded,
            json!({"detail": {"tags": ["vip", "late"]}})
        ));
    }

    // -- $or ---------------------------------------------------------------------------------

    #[test]
    fn or_at_the_top_with_other_fields() {
        let pattern = json!({
            "source": ["parley"],
            "$or": [
                {"detail-type": ["sms.received"]},
                {"detail": {"status": ["failed", "undelivered"]}}
            ]
        });
        assert!(matches(
            pattern.clone(),
            parley_event("sms.received", json!({}))
        ));
        let failed = parley_event("sms.status_changed", json!({"status": "failed"}));
        assert!(matches(pattern.clone(), failed.clone()));
        let delivered = parley_event("sms.status_changed", json!({"status": "delivered"}));
        assert!(!matches(pattern.clone(), delivered));
        let mut elsewhere = failed;
        elsewhere["source"] = json!("billing");
        assert!(!matches(pattern, elsewhere));
    }

    // -- Parse errors ------------------------------------------------------------------------

    #[test]
    fn refuses_what_is_not_a_pattern() {
        assert_refused(json!(["source"]), "$", "JSON object");
        assert_refused(json!("parley"), "$", "JSON object");
        assert_refused(json!({}), "$", "empty object");
        assert_refused(json!({"detail": {}}), "detail", "empty object");
        assert_refused(json!({"source": "parley"}), "source", "array of values");
        assert_refused(
            json!({"detail": {"amount": 5}}),
            "detail.amount",
            "array of values",
        );
        assert_refused(json!({"detail-type": []}), "detail-type", "empty array");
        assert_refused(
            json!({"detail-type": [["a"]]}),
            "detail-type[0]",
            "not an array",
        );
    }

    #[test]
    fn refuses_unknown_and_malformed_filters() {
        assert_refused(
            json!({"detail": {"state": ["a", {"prefx": "x"}]}}),
            "detail.state[1]",
            "unknown filter `prefx`",
        );
        assert_refused(json!({"v": [{}]}), "v[0]", "exactly one key");
        assert_refused(
            json!({"v": [{"prefix": "a", "suffix": "b"}]}),
            "v[0]",
            "exactly one key",
        );
        assert_refused(
            json!({"v": [{"prefix": 5}]}),
            "v[0]",
            "prefix: takes a string",
        );
        assert_refused(
            json!({"v": [{"suffix": {"ignore-case": "a"}}]}),
            "v[0]",
            "suffix: takes",
        );
        assert_refused(
            json!({"v": [{"equals-ignore-case": 1}]}),
            "v[0]",
            "equals-ignore-case: takes a string",
        );
        assert_refused(
            json!({"v": [{"exists": "yes"}]}),
            "v[0]",
            "exists: takes true or false",
        );
        assert_refused(
            json!({"v": [{"cidr": "10.0.0.0/24"}]}),
            "v[0]",
            "does not support",
        );
        assert_refused(
            json!({"v": [{"wildcard": "*.png"}]}),
            "v[0]",
            "does not support",
        );
    }

    #[test]
    fn refuses_bad_anything_but_operands() {
        assert_refused(
            json!({"v": [{"anything-but": null}]}),
            "v[0]",
            "anything-but: takes",
        );
        assert_refused(
            json!({"v": [{"anything-but": true}]}),
            "v[0]",
            "anything-but: takes",
        );
        assert_refused(
            json!({"v": [{"anything-but": ["a", 1]}]}),
            "v[0]",
            "only strings or only numbers",
        );
        assert_refused(json!({"v": [{"anything-but": []}]}), "v[0]", "at least one");
        assert_refused(
            json!({"v": [{"anything-but": {"wildcard": "*"}}]}),
            "v[0]",
            "`wildcard` is not supported",
        );
        assert_refused(
            json!({"v": [{"anything-but": {"prefix": ""}}]}),
            "v[0]",
            "must not be empty",
        );
        assert_refused(
            json!({"v": [{"anything-but": {"suffix": [1]}}]}),
            "v[0]",
            "suffix takes a string",
        );
        assert_refused(
            json!({"v": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}),
            "v[0]",
            "exactly one",
        );
    }

    #[test]
    fn refuses_bad_numeric_ranges() {
        let numeric = |terms: Value| json!({"detail": {"amount": [{"numeric": terms}]}});
        let at = "detail.amount[0]";
        assert_refused(numeric(json!(5)), at, "takes an array");
        assert_refused(numeric(json!([">"])), at, "one comparison");
        assert_refused(numeric(json!([">", 1, "<"])), at, "one comparison");
        assert_refused(numeric(json!([">", 1, "<", 5, "x"])), at, "one comparison");
        assert_refused(numeric(json!(["!=", 1])), at, "unknown operator");
        assert_refused(numeric(json!([">", "1"])), at, "> takes a number");
        assert_refused(
            numeric(json!(["<", 5, ">", 1])),
            at,
            "lower bound (> or >=)",
        );
        assert_refused(
            numeric(json!([">", 1, ">=", 5])),
            at,
            "lower bound (> or >=)",
        );
        assert_refused(
            numeric(json!(["=", 1, "<", 5])),
            at,
            "lower bound (> or >=)",
        );
        assert_refused(
            numeric(json!([">", 5, "<", 5])),
            at,
            "below the upper bound",
        );
        assert_refused(
            numeric(json!([">=", 6, "<=", 5])),
            at,
            "below the upper bound",
        );
        let e = refused(numeric(json!([">", 5, "<", 1])));
        assert_eq!(
            e.to_string(),
            "detail.amount[0]: numeric: the lower bound must be below the upper bound"
        );
    }

    #[test]
    fn refuses_bad_or() {
        assert_refused(json!({"$or": {"a": ["x"]}}), "$or", "at least two objects");
        assert_refused(
            json!({"$or": [{"a": ["x"]}]}),
            "$or",
            "at least two objects",
        );
        assert_refused(
            json!({"detail": {"$or": [{"a": ["x"]}, ["b"]]}}),
            "detail.$or[1]",
            "object of fields",
        );
        assert_refused(
            json!({"$or": [{"a": ["x"]}, {"prefix": ["b"]}]}),
            "$or[1].prefix",
            "filter name",
        );
        assert_refused(json!({"$or": [{"a": ["x"]}, {}]}), "$or[1]", "empty object");
    }

    #[test]
    fn refuses_deep_nesting() {
        let mut deep = json!({"leaf": ["x"]});
        for _ in 0..9 {
            deep = json!({ "n": deep });
        }
        assert!(Pattern::parse(&deep).is_ok(), "ten levels are fine");
        let too_deep = json!({ "n": deep });
        assert_refused(too_deep, "n.n.n.n.n.n.n.n.n.n", "deeper than 10 levels");
    }

    #[test]
    fn refuses_more_than_a_thousand_values() {
        let many: Vec<u32> = (0..1000).collect();
        assert!(Pattern::parse(&json!({"a": many})).is_ok());
        assert_refused(
            json!({"a": many, "b": ["one too many"]}),
            "b[0]",
            "at most 1000 values",
        );
        let excluded: Vec<u32> = (0..1001).collect();
        assert_refused(
            json!({"a": [{"anything-but": excluded}]}),
            "a[0]",
            "at most 1000 values",
        );
    }

    // -- Serde and the API -------------------------------------------------------------------

    #[test]
    fn serde_round_trips_the_original_json() {
        let text = r#"{"source":["parley"],"detail":{"amount":[{"numeric":[">",0,"<=",5.5]}],"state":[{"anything-but":{"prefix":"init"}}]}}"#;
        let pattern: Pattern = serde_json::from_str(text).unwrap();
        assert_eq!(
            pattern.as_json(),
            &serde_json::from_str::<Value>(text).unwrap()
        );
        let back = serde_json::to_string(&pattern).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&back).unwrap(),
            *pattern.as_json()
        );
        assert_eq!(serde_json::from_str::<Pattern>(&back).unwrap(), pattern);
        assert!(
            pattern.matches(&json!({"source": "parley", "detail": {"amount": 5.5, "state": "ok"}}))
        );
    }

    #[test]
    fn serde_refuses_invalid_patterns_with_the_path() {
        #[derive(Debug, Deserialize)]
        struct Rule {
            #[serde(rename = "match")]
            _pattern: Pattern,
        }
        let e = serde_json::from_str::<Rule>(
            r#"{"match": {"detail": {"amount": [{"numeric": [">", "x"]}]}}}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("detail.amount[0]: numeric: > takes a number"),
            "{e}"
        );
    }

    #[test]
    fn equality_is_by_json() {
        let a = compile(json!({"source": ["parley"]}));
        assert_eq!(a, compile(json!({"source": ["parley"]})));
        assert_ne!(a, compile(json!({"source": ["parley", "billing"]})));
    }
}
