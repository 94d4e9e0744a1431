//! The crate's layers, held: reads the layer table in README.md ("## Layout") and
//! every file under src/, and fails on an import circle, an import that points up
//! a layer, a file that no layer covers, or a file that does not open with a `//!`
//! doc.
//!
//! How an import is found: `syn` parses each file; every `use` (grouped trees
//! expanded, `pub use` included) and every path written in code, in attributes or
//! in a macro's tokens that starts with `crate`, `super`, `self`, the crate's own
//! name, a child module or a name bound by a `use` is resolved relative to the
//! module it is written in. It then maps to the file that defines the deepest
//! module it names (`crate::a::b::Item` is src/a/b.rs or src/a/b/mod.rs, else
//! src/a.rs or src/a/mod.rs). A name that module only re-exports is followed to
//! the re-export's source, so `crate::Result` is an import of src/error.rs. Code
//! under `#[cfg(test)]` is left out: tests may reach anywhere.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use syn::visit::{self, Visit};

/// The line just above the table in README.md.
const MARKER: &str = "<!-- layers: top first; tests/layering.rs reads this table -->";

/// One row of the table: a layer and the paths it covers (`src/a.rs` is that
/// file, `src/a/` every file under that folder).
#[derive(Debug, Clone)]
struct Layer {
    name: String,
    paths: Vec<String>,
}

/// The layer table that follows [`MARKER`], top layer first.
fn parse_layers(readme: &str) -> Result<Vec<Layer>, String> {
    let mut lines = readme.lines().skip_while(|l| l.trim() != MARKER);
    if lines.next().is_none() {
        return Err(format!("README.md has no line `{MARKER}`"));
    }
    let rows: Vec<&str> = lines
        .map(str::trim)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let mut layers = Vec::new();
    for (k, row) in rows.iter().enumerate() {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 {
            return Err(format!(
                "layer table row {}: `{row}` has no files column",
                k + 1
            ));
        }
        if k == 0
            || cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue; // the header and the separator
        }
        let paths: Vec<String> = cells[1]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        if paths.is_empty() {
            return Err(format!(
                "layer `{}` names no `path` in its files column",
                cells[0]
            ));
        }
        layers.push(Layer {
            name: cells[0].to_string(),
            paths,
        });
    }
    if layers.is_empty() {
        return Err(format!("no layer rows after `{MARKER}`"));
    }
    Ok(layers)
}

/// The layer (index into `layers`, top = 0) that covers `file`: the longest path
/// that matches it, so a file can be placed apart from its folder.
fn layer_of(file: &str, layers: &[Layer]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (k, layer) in layers.iter().enumerate() {
        for p in &layer.paths {
            let hit = if p.ends_with('/') {
                file.starts_with(p.as_str())
            } else {
                file == p
            };
            if hit && best.is_none_or(|(_, len)| p.len() > len) {
                best = Some((k, p.len()));
            }
        }
    }
    best.map(|(k, _)| k)
}

/// One file using another: `from` names `name` of `to`, at `line` of `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    from: String,
    line: usize,
    to: String,
    name: String,
}

/// Each name an edge carries, with the first line that uses it.
type Names = BTreeMap<String, usize>;

#[derive(Debug)]
enum Violation {
    /// Files that reach each other through imports, with the edges among them.
    Circle {
        files: Vec<String>,
        edges: Vec<(String, String, Names)>,
    },
    /// `from`, in a lower layer, imports from `to`, in a higher one.
    Upward {
        from: String,
        from_layer: String,
        to: String,
        to_layer: String,
        names: Names,
    },
    /// No row of the table covers this file.
    Unplaced { file: String },
    /// The file does not open with a `//!` doc comment.
    NoModuleDoc { file: String },
    /// `syn` could not parse the file.
    Unparsable { file: String, error: String },
}

fn fmt_names(names: &Names) -> String {
    names
        .iter()
        .map(|(n, line)| format!("{n} (line {line})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Circle { files, edges } => {
                write!(
                    f,
                    "import circle of {} files: {}",
                    files.len(),
                    files.join(", ")
                )?;
                for (a, b, names) in edges {
                    write!(f, "\n    {a} -> {b}: {}", fmt_names(names))?;
                }
                Ok(())
            }
            Violation::Upward {
                from,
                from_layer,
                to,
                to_layer,
                names,
            } => write!(
                f,
                "upward import: {from} ({from_layer}) -> {to} ({to_layer}): {}",
                fmt_names(names)
            ),
            Violation::Unplaced { file } => write!(
                f,
                "no layer covers {file}: place it in a row of the table in README.md"
            ),
            Violation::NoModuleDoc { file } => {
                write!(f, "{file} does not open with a `//!` doc comment")
            }
            Violation::Unparsable { file, error } => write!(f, "{file} does not parse: {error}"),
        }
    }
}

// ---- which module is where ----

/// A module scope: whether it is in the binary (src/main.rs) rather than the
/// library, and its path from the crate root.
type Scope = (bool, Vec<String>);

/// What a scope's `use` items bind: a name to the path it was imported from
/// (as written, relative to that scope), and the paths of its glob imports.
#[derive(Default)]
struct Bindings {
    names: HashMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
}

/// The library's module of a file: src/a/b.rs and src/a/b/mod.rs are `a::b`,
/// src/lib.rs the root. src/main.rs is the binary's root.
fn module_of(file: &str) -> Scope {
    let rel = file.strip_prefix("src/").unwrap_or(file);
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    if rel == "main" {
        return (true, Vec::new());
    }
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    (false, parts)
}

/// Whether a `#[cfg(...)]` holds only when testing.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    fn implies_test(meta: &syn::Meta) -> bool {
        match meta {
            syn::Meta::Path(p) => p.is_ident("test"),
            syn::Meta::List(list) => {
                let nested = list
                    .parse_args_with(
                        syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
                    )
                    .unwrap_or_default();
                if list.path.is_ident("all") {
                    nested.iter().any(implies_test)
                } else if list.path.is_ident("any") {
                    !nested.is_empty() && nested.iter().all(implies_test)
                } else {
                    false
                }
            }
            syn::Meta::NameValue(_) => false,
        }
    }
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|meta| implies_test(&meta))
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

fn line_of(span: Span) -> usize {
    span.start().line
}

/// One leaf of a `use` tree: the path as written (a glob's path ends at its
/// module), what it binds (`None` for a glob), and the leaf's line.
struct UseLeaf {
    path: Vec<String>,
    binds: Option<String>,
    line: usize,
}

fn use_leaves(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<UseLeaf>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_leaves(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push(leaf(prefix, &n.ident, &n.ident)),
        syn::UseTree::Rename(r) => out.push(leaf(prefix, &r.ident, &r.rename)),
        syn::UseTree::Glob(g) => out.push(UseLeaf {
            path: prefix.clone(),
            binds: None,
            line: line_of(g.star_token.span),
        }),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_leaves(t, prefix, out);
            }
        }
    }
}

/// `a::b::Name` binds `Name`; `a::b::{self}` binds `b`; `as` renames either.
fn leaf(prefix: &[String], ident: &syn::Ident, bound: &syn::Ident) -> UseLeaf {
    let mut path = prefix.to_vec();
    let binds = if ident == "self" {
        if bound == "self" {
            prefix.last().cloned()
        } else {
            Some(bound.to_string())
        }
    } else {
        path.push(ident.to_string());
        Some(bound.to_string())
    };
    UseLeaf {
        path,
        binds: binds.filter(|b| b != "_"),
        line: line_of(ident.span()),
    }
}

/// Walks a file's code outside `#[cfg(test)]`, tracking the module scope, and
/// hands each `use` leaf and each path of two or more segments to `on`.
struct Walker<'a> {
    scope: Scope,
    on: &'a mut dyn FnMut(&Scope, Found),
}

enum Found {
    Use(UseLeaf),
    Path(Vec<String>, usize),
}

impl Walker<'_> {
    /// Paths inside a token stream (a macro's input, an attribute's arguments):
    /// `a::b::c` as identifiers joined by `::`.
    fn scan(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => {
                    if g.delimiter() != Delimiter::None || !g.stream().is_empty() {
                        self.scan(g.stream());
                    }
                    i += 1;
                }
                TokenTree::Ident(id) => {
                    let mut segs = vec![id.to_string()];
                    let mut j = i + 1;
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (trees.get(j), trees.get(j + 1), trees.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segs.push(next.to_string());
                        j += 3;
                    }
                    if segs.len() > 1 {
                        (self.on)(&self.scope, Found::Path(segs, line_of(id.span())));
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_test_only(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !is_test_only(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // `mod x;` declares a module: it is not an import.
        if let Some((_, items)) = &m.content {
            self.scope.1.push(m.ident.to_string());
            for item in items {
                self.visit_item(item);
            }
            self.scope.1.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_some() {
            return; // `use ::name::...` is another crate
        }
        let mut leaves = Vec::new();
        use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
        for l in leaves {
            (self.on)(&self.scope, Found::Use(l));
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() && p.segments.len() > 1 {
            let segs = p.segments.iter().map(|s| s.ident.to_string()).collect();
            (self.on)(
                &self.scope,
                Found::Path(segs, line_of(p.segments[0].ident.span())),
            );
        }
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.scan(m.tokens.clone());
    }

    fn visit_meta_list(&mut self, m: &'ast syn::MetaList) {
        self.visit_path(&m.path);
        self.scan(m.tokens.clone());
    }

    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {
        // `pub(in crate::a)` limits who sees an item; it imports nothing.
    }
}

/// The crate's module tree and every scope's `use` bindings.
struct Crate<'a> {
    name: &'a str,
    modules: BTreeMap<Vec<String>, String>,
    bindings: HashMap<Scope, Bindings>,
}

/// How far a chain of bindings or re-exports is followed.
const MAX_HOPS: usize = 16;

impl Crate<'_> {
    /// The library path a path written in `scope` stands for; `None` when it is
    /// another crate's, the binary's own, or a local name.
    fn absolute(&self, scope: &Scope, segs: &[String], hops: usize) -> Option<Vec<String>> {
        let (in_bin, module) = scope;
        let (first, rest) = segs.split_first()?;
        let join = |mut base: Vec<String>, rest: &[String]| {
            base.extend_from_slice(rest);
            Some(base)
        };
        match first.as_str() {
            _ if hops > MAX_HOPS => None,
            "crate" | "self" | "super" if *in_bin => None,
            "crate" => join(Vec::new(), rest),
            "self" => join(module.clone(), rest),
            "super" => {
                let mut base = module.clone();
                base.pop()?;
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                join(base, rest)
            }
            name if name == self.name => join(Vec::new(), rest),
            name => {
                let mut child = module.clone();
                child.push(name.to_string());
                if !*in_bin && self.modules.contains_key(&child) {
                    return join(child, rest);
                }
                let b = self.bindings.get(scope)?;
                if let Some(path) = b.names.get(name) {
                    return join(self.absolute(scope, path, hops + 1)?, rest);
                }
                // `use a::*` brings in a's child modules too.
                b.globs.iter().find_map(|g| {
                    let mut m = self.absolute(scope, g, hops + 1)?;
                    m.push(name.to_string());
                    if self.modules.contains_key(&m) {
                        join(m, rest)
                    } else {
                        None
                    }
                })
            }
        }
    }

    /// The file that defines the deepest module `path` names, and the name used
    /// from it (`self` for the module itself), through any re-export.
    fn locate(&self, path: &[String], hops: usize) -> Option<(String, String)> {
        let n = (0..=path.len())
            .rev()
            .find(|&n| self.modules.contains_key(&path[..n]))?;
        let module = path[..n].to_vec();
        let file = self.modules[&module].clone();
        let Some(name) = path.get(n) else {
            return Some((file, "self".to_string()));
        };
        let scope = (false, module);
        let reexport = self
            .bindings
            .get(&scope)
            .and_then(|b| b.names.get(name))
            .filter(|_| hops < MAX_HOPS)
            .and_then(|src| self.absolute(&scope, src, hops + 1));
        if let Some(mut source) = reexport {
            source.extend_from_slice(&path[n + 1..]);
            if let Some(found) = self.locate(&source, hops + 1) {
                return Some(found);
            }
        }
        Some((file, name.clone()))
    }
}

/// Modules written inline (`mod x { ... }`, not under `#[cfg(test)]`) live in
/// the file that holds them.
fn inline_modules(
    items: &[syn::Item],
    module: &[String],
    file: &str,
    out: &mut BTreeMap<Vec<String>, String>,
) {
    for item in items {
        if let syn::Item::Mod(m) = item {
            if let (Some((_, inner)), false) = (&m.content, is_test_only(&m.attrs)) {
                let mut path = module.to_vec();
                path.push(m.ident.to_string());
                inline_modules(inner, &path, file, out);
                out.entry(path).or_insert_with(|| file.to_string());
            }
        }
    }
}

/// Every import between the given files (paths like `src/a/b.rs`), or the files
/// that do not parse.
fn imports(files: &[(String, String)], crate_name: &str) -> Result<Vec<Import>, Vec<Violation>> {
    let mut parsed = Vec::new();
    let mut bad = Vec::new();
    for (path, text) in files {
        match syn::parse_file(text) {
            Ok(ast) => parsed.push((path.as_str(), ast)),
            Err(e) => bad.push(Violation::Unparsable {
                file: path.clone(),
                error: format!("line {}: {e}", line_of(e.span())),
            }),
        }
    }
    if !bad.is_empty() {
        return Err(bad);
    }

    // Pass 1: the module tree (files and inline modules) and every `use` binding.
    let mut krate = Crate {
        name: crate_name,
        modules: BTreeMap::new(),
        bindings: HashMap::new(),
    };
    for (path, _) in &parsed {
        let (in_bin, module) = module_of(path);
        if !in_bin {
            krate.modules.insert(module, path.to_string());
        }
    }
    for (path, ast) in &parsed {
        let (in_bin, module) = module_of(path);
        if !in_bin {
            inline_modules(&ast.items, &module, path, &mut krate.modules);
        }
        let mut on = |scope: &Scope, found: Found| {
            if let Found::Use(l) = found {
                let b = krate.bindings.entry(scope.clone()).or_default();
                match l.binds {
                    Some(name) => {
                        b.names.insert(name, l.path);
                    }
                    None => b.globs.push(l.path),
                }
            }
        };
        let mut w = Walker {
            scope: module_of(path),
            on: &mut on,
        };
        w.visit_file(ast);
    }

    // Pass 2: resolve every use leaf and every path.
    let mut out = Vec::new();
    for (path, ast) in &parsed {
        let mut on = |scope: &Scope, found: Found| {
            let (written, line, glob) = match found {
                Found::Use(l) => (l.path, l.line, l.binds.is_none()),
                Found::Path(segs, line) => (segs, line, false),
            };
            let Some(abs) = krate.absolute(scope, &written, 0) else {
                return;
            };
            let Some((to, mut name)) = krate.locate(&abs, 0) else {
                return;
            };
            if glob && name == "self" {
                name = "*".to_string();
            }
            if to != *path {
                out.push(Import {
                    from: path.to_string(),
                    line,
                    to,
                    name,
                });
            }
        };
        let mut w = Walker {
            scope: module_of(path),
            on: &mut on,
        };
        w.visit_file(ast);
    }
    Ok(out)
}

/// Groups of more than one file that reach each other (Tarjan's strongly
/// connected components), each sorted, largest first.
fn circles(edges: &BTreeMap<(String, String), Names>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: BTreeMap<&'a str, Vec<&'a str>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).cloned().unwrap_or_default() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph: BTreeMap::new(),
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for (a, b) in edges.keys() {
        t.graph.entry(a).or_default().push(b);
    }
    let nodes: Vec<&str> = t.graph.keys().copied().collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    let mut out = t.out;
    out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    out
}

/// Whether the file opens with a `//!` doc (after blank lines and attributes).
fn has_module_doc(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("#![") && !l.starts_with("#["))
        .is_some_and(|l| l.starts_with("//!") || l.starts_with("/*!"))
}

/// Everything wrong with the files' shape against the layer table: circles,
/// upward imports, files in no layer, files without a `//!` doc.
fn check(files: &[(String, String)], layers: &[Layer], crate_name: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let imports = match imports(files, crate_name) {
        Ok(i) => i,
        Err(bad) => return bad,
    };
    let mut edges: BTreeMap<(String, String), Names> = BTreeMap::new();
    for i in imports {
        edges
            .entry((i.from, i.to))
            .or_default()
            .entry(i.name)
            .and_modify(|l| *l = (*l).min(i.line))
            .or_insert(i.line);
    }

    for files in circles(&edges) {
        let members: BTreeSet<&String> = files.iter().collect();
        let inner = edges
            .iter()
            .filter(|((a, b), _)| members.contains(a) && members.contains(b))
            .map(|((a, b), n)| (a.clone(), b.clone(), n.clone()))
            .collect();
        out.push(Violation::Circle {
            files,
            edges: inner,
        });
    }

    for ((a, b), names) in &edges {
        if let (Some(la), Some(lb)) = (layer_of(a, layers), layer_of(b, layers)) {
            if la > lb {
                out.push(Violation::Upward {
                    from: a.clone(),
                    from_layer: layers[la].name.clone(),
                    to: b.clone(),
                    to_layer: layers[lb].name.clone(),
                    names: names.clone(),
                });
            }
        }
    }

    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort();
    for (path, text) in sorted {
        if layer_of(path, layers).is_none() {
            out.push(Violation::Unplaced { file: path.clone() });
        }
        if !has_module_doc(text) {
            out.push(Violation::NoModuleDoc { file: path.clone() });
        }
    }
    out
}

/// Every .rs file under `dir`, as (path relative to the crate root, text).
fn read_sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_sources(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(root).expect("under the crate root");
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            out.push((rel, text));
        }
    }
}

fn crate_name() -> String {
    env!("CARGO_PKG_NAME").replace('-', "_")
}

/// A kind of violation: its name, its plural, and how to tell it.
type Kind = (&'static str, &'static str, fn(&Violation) -> bool);

#[test]
fn src_keeps_its_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let layers = parse_layers(&readme).unwrap_or_else(|e| panic!("{e}"));
    let mut files = Vec::new();
    read_sources(root, &root.join("src"), &mut files);
    let found = check(&files, &layers, &crate_name());
    if found.is_empty() {
        return;
    }
    let kinds: [Kind; 5] = [
        ("import circle", "import circles", |v| {
            matches!(v, Violation::Circle { .. })
        }),
        ("upward import", "upward imports", |v| {
            matches!(v, Violation::Upward { .. })
        }),
        ("file in no layer", "files in no layer", |v| {
            matches!(v, Violation::Unplaced { .. })
        }),
        (
            "file without a `//!` doc",
            "files without a `//!` doc",
            |v| matches!(v, Violation::NoModuleDoc { .. }),
        ),
        ("file that does not parse", "files that do not parse", |v| {
            matches!(v, Violation::Unparsable { .. })
        }),
    ];
    let summary: Vec<String> = kinds
        .iter()
        .map(
            |(one, many, is)| match found.iter().filter(|v| is(v)).count() {
                0 => String::new(),
                1 => format!("1 {one}"),
                n => format!("{n} {many}"),
            },
        )
        .filter(|s| !s.is_empty())
        .collect();
    let mut msg = format!(
        "src/ does not keep the layers of README.md's \"## Layout\" table: {}\n",
        summary.join(", ")
    );
    for v in &found {
        msg.push_str(&format!("\n{v}"));
    }
    panic!("{msg}");
}

// ---- the checker can fail ----

/// A table of three layers: `src/lib.rs src/top.rs` over `src/mid.rs src/mid/`
/// over `src/low.rs src/low/`.
fn synthetic_layers() -> Vec<Layer> {
    let readme = format!(
        "# x\n\n## Layout\n\n{MARKER}\n\
         | layer | files | what lives there | never imports |\n\
         | --- | --- | --- | --- |\n\
         | top | `src/lib.rs` `src/top.rs` | the top | — |\n\
         | mid | `src/mid.rs` `src/mid/` | the middle | top |\n\
         | low | `src/low.rs` `src/low/` | the bottom | mid, top |\n\
         \nafter the table\n"
    );
    let layers = parse_layers(&readme).expect("the synthetic table parses");
    assert_eq!(
        layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["top", "mid", "low"]
    );
    assert_eq!(layers[1].paths, ["src/mid.rs", "src/mid/"]);
    layers
}

/// A tree of files in memory, each given a `//!` doc unless it has one.
fn tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| {
            let text = if t.trim_start().starts_with("//!") {
                t.to_string()
            } else {
                format!("//! {p}\n{t}")
            };
            (p.to_string(), text)
        })
        .collect()
}

const LIB: &str = "pub mod top;\npub mod mid;\npub mod low;\n";

fn synthetic(files: &[(&str, &str)]) -> Vec<Violation> {
    check(&tree(files), &synthetic_layers(), "demo")
}

fn edge(imports: &[Import], from: &str, to: &str, name: &str) -> bool {
    imports
        .iter()
        .any(|i| i.from == from && i.to == to && i.name == name)
}

#[test]
fn a_clean_tree_passes() {
    let found = synthetic(&[
        ("src/lib.rs", LIB),
        ("src/top.rs", "use crate::mid::Mid;\npub struct Top(Mid);\n"),
        ("src/mid.rs", "pub struct Mid(crate::low::Low);\n"),
        ("src/low.rs", "pub struct Low;\n"),
    ]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn an_upward_import_is_reported() {
    let found = synthetic(&[
        ("src/lib.rs", LIB),
        ("src/top.rs", "pub struct Top;\n"),
        ("src/mid.rs", "pub struct Mid;\n"),
        ("src/low.rs", "pub struct Low;\n\nuse crate::top::Top;\n"),
    ]);
    assert_eq!(found.len(), 1, "{found:#?}");
    match &found[0] {
        Violation::Upward {
            from,
            from_layer,
            to,
            to_layer,
            names,
        } => {
            assert_eq!((from.as_str(), from_layer.as_str()), ("src/low.rs", "low"));
            assert_eq!((to.as_str(), to_layer.as_str()), ("src/top.rs", "top"));
            assert_eq!(names.get("Top"), Some(&4), "the name and its line");
        }
        v => panic!("expected an upward import, got {v}"),
    }
    assert!(found[0]
        .to_string()
        .contains("src/low.rs (low) -> src/top.rs (top): Top (line 4)"));
}

#[test]
fn a_two_file_circle_is_reported() {
    let found = synthetic(&[
        ("src/lib.rs", LIB),
        ("src/top.rs", ""),
        ("src/mid.rs", "pub mod a;\npub mod b;\n"),
        ("src/mid/a.rs", "pub struct A(super::b::B);\n"),
        (
            "src/mid/b.rs",
            "use crate::mid::a::A;\npub fn b(_: A) {}\npub struct B;\n",
        ),
        ("src/low.rs", ""),
    ]);
    assert_eq!(found.len(), 1, "{found:#?}");
    match &found[0] {
        Violation::Circle { files, edges } => {
            assert_eq!(files, &["src/mid/a.rs", "src/mid/b.rs"]);
            let names: Vec<_> = edges
                .iter()
                .map(|(a, b, n)| {
                    (
                        a.as_str(),
                        b.as_str(),
                        n.keys().cloned().collect::<Vec<_>>(),
                    )
                })
                .collect();
            assert_eq!(
                names,
                [
                    ("src/mid/a.rs", "src/mid/b.rs", vec!["B".to_string()]),
                    ("src/mid/b.rs", "src/mid/a.rs", vec!["A".to_string()]),
                ]
            );
        }
        v => panic!("expected a circle, got {v}"),
    }
}

#[test]
fn grouped_uses_inline_paths_and_macros_are_seen() {
    let files = tree(&[
        (
            "src/lib.rs",
            "pub mod top;\npub mod mid;\npub mod low;\npub use low::Low;\n",
        ),
        ("src/mid.rs", "pub mod deep;\npub mod other;\n"),
        ("src/mid/deep.rs", ""),
        ("src/mid/other.rs", ""),
        ("src/low.rs", "pub mod inner;\npub struct Low;\n"),
        ("src/low/inner.rs", ""),
        (
            "src/top.rs",
            "use crate::{mid::{Alpha, deep::{self, Beta}}, low as l};\n\
             fn f() {\n    crate::mid::other::go();\n    let _ = l::inner::X;\n    \
             println!(\"{}\", super::mid::deep::fmt(1));\n    let _: crate::Low;\n}\n",
        ),
    ]);
    let found = imports(&files, "demo").expect("parses");
    let top = "src/top.rs";
    assert!(edge(&found, top, "src/mid.rs", "Alpha"), "{found:#?}");
    assert!(edge(&found, top, "src/mid/deep.rs", "self"), "{found:#?}");
    assert!(edge(&found, top, "src/mid/deep.rs", "Beta"), "{found:#?}");
    assert!(
        edge(&found, top, "src/low.rs", "self"),
        "`low as l`: {found:#?}"
    );
    assert!(
        edge(&found, top, "src/mid/other.rs", "go"),
        "inline: {found:#?}"
    );
    assert!(
        edge(&found, top, "src/low/inner.rs", "X"),
        "through `l`: {found:#?}"
    );
    assert!(
        edge(&found, top, "src/mid/deep.rs", "fmt"),
        "in a macro: {found:#?}"
    );
    assert!(
        edge(&found, top, "src/low.rs", "Low"),
        "re-exported: {found:#?}"
    );
    assert!(
        edge(&found, "src/lib.rs", "src/low.rs", "Low"),
        "the pub use: {found:#?}"
    );
    let line = |name: &str| found.iter().find(|i| i.name == name).map(|i| i.line);
    assert_eq!(line("go"), Some(4));
    assert_eq!(line("fmt"), Some(6));
}

#[test]
fn super_and_child_paths_resolve_from_the_files_module() {
    let files = tree(&[
        ("src/lib.rs", "pub mod mid;\n"),
        ("src/mid/mod.rs", "mod a;\nmod b;\nuse a::A;\npub fn f() { b::g(); }\n"),
        ("src/mid/a.rs", "pub struct A;\nfn h() { super::b::g(); self::inner::i(); }\nmod inner { pub fn i() {} }\n"),
        ("src/mid/b.rs", "pub fn g() {}\n"),
        ("src/b.rs", "pub fn g() {}\n"),
    ]);
    let found = imports(&files, "demo").expect("parses");
    assert!(
        edge(&found, "src/mid/mod.rs", "src/mid/a.rs", "A"),
        "{found:#?}"
    );
    assert!(
        edge(&found, "src/mid/mod.rs", "src/mid/b.rs", "g"),
        "{found:#?}"
    );
    assert!(
        edge(&found, "src/mid/a.rs", "src/mid/b.rs", "g"),
        "{found:#?}"
    );
    assert!(!edge(&found, "src/mid/a.rs", "src/b.rs", "g"), "{found:#?}");
    assert!(found.iter().all(|i| i.from != i.to), "{found:#?}");
}

#[test]
fn test_modules_are_ignored() {
    let found = synthetic(&[
        ("src/lib.rs", LIB),
        ("src/top.rs", "pub struct Top;\n"),
        ("src/mid.rs", ""),
        (
            "src/low.rs",
            "pub fn low() {}\n\n#[cfg(test)]\nmod tests {\n    use crate::top;\n    \
             fn t() { let _ = crate::top::Top; }\n}\n\n\
             #[cfg(all(test, target_os = \"linux\"))]\nfn helper() { crate::top::Top; }\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn a_file_in_no_layer_is_reported() {
    let found = synthetic(&[
        ("src/lib.rs", "pub mod top;\npub mod stray;\n"),
        ("src/top.rs", ""),
        ("src/stray.rs", ""),
        ("src/mid/new.rs", ""),
    ]);
    let files: Vec<_> = found
        .iter()
        .map(|v| match v {
            Violation::Unplaced { file } => file.as_str(),
            v => panic!("expected only unplaced files, got {v}"),
        })
        .collect();
    assert_eq!(files, ["src/stray.rs"], "src/mid/ covers src/mid/new.rs");
}

#[test]
fn a_file_without_a_module_doc_is_reported() {
    let mut files = tree(&[("src/lib.rs", LIB), ("src/top.rs", "")]);
    files.push((
        "src/mid.rs".into(),
        "#![allow(dead_code)]\n\n//! Mid.\n".into(),
    ));
    files.push((
        "src/low.rs".into(),
        "// not a doc\npub struct Low;\n".into(),
    ));
    let found = check(&files, &synthetic_layers(), "demo");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(matches!(&found[0], Violation::NoModuleDoc { file } if file == "src/low.rs"));
}

#[test]
fn a_missing_table_is_an_error() {
    assert!(parse_layers("# no table here\n").is_err());
}

/// Every edge of src/, one a line in `modgraph --edges`' form, to compare:
/// `cargo test --test layering -- --ignored --nocapture edges_of_src`.
#[test]
#[ignore = "prints the import graph; run by hand"]
fn edges_of_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    read_sources(root, &root.join("src"), &mut files);
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for i in imports(&files, &crate_name()).unwrap_or_else(|bad| panic!("{bad:#?}")) {
        edges.entry((i.from, i.to)).or_default().insert(i.name);
    }
    for ((a, b), names) in edges {
        let names: Vec<_> = names.into_iter().collect();
        println!("{a} -> {b}: {}", names.join(", "));
    }
}
