//! The renderer: a minijinja environment, and renders over a [`Lookup`] on a blocking thread.

use std::sync::{Arc, Mutex};

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;
use tokio::runtime::Handle;

use crate::lookup::Lookup;
use crate::value::{RenderingGuard, Resources, Shared};

/// How a template that reads something missing is treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Undefined {
    /// minijinja's default: a missing field is undefined (prints empty, is false, iterates as
    /// empty); reading a field *of* an undefined value is an error. Lookups with an undefined
    /// key match nothing.
    #[default]
    Lenient,
    /// Like `Lenient`, and reading a field of an undefined value is undefined too
    /// (`ing.spec.tls.secretName` is undefined when there is no `tls`).
    Chainable,
    /// Printing, iterating or reading a field of an undefined value is an error naming the
    /// template, the line and the expression; so is a lookup with an undefined key. Testing
    /// one (`{% if ing.spec.tls %}`) is allowed: optional fields stay expressible
    /// (minijinja's `SemiStrict`).
    Strict,
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The template could not be parsed, or the render failed in it (undefined value in strict
    /// mode, a failed lookup, a bad argument, a missing template, …).
    #[error("template {template:?}{}: {message}{}", line_text(*line), expr_text(expression))]
    Template {
        /// The template the error is in (an included one, when it happened there).
        template: String,
        /// The line in that template, when known.
        line: Option<usize>,
        /// The expression the error points at, as written in the template (for an undefined
        /// value, the missing key: `ing.spec.tlss`).
        expression: Option<String>,
        /// minijinja's description.
        message: String,
        /// minijinja's error.
        #[source]
        source: minijinja::Error,
    },
    /// A lookup failed while the template iterated a resource (`for x in resources.NAME`),
    /// where minijinja takes no error; the render's output is dropped.
    #[error("template {template:?}: {message}")]
    Lookup {
        /// The template rendered.
        template: String,
        /// The resource and the lookup's error.
        message: String,
    },
    /// The blocking render task did not complete (the runtime shut down, or it panicked).
    #[error("template {template:?}: the render task did not complete: {source}")]
    Task {
        /// The template rendered.
        template: String,
        /// Tokio's error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// The expression an error's span points at, widened to the left over the path it ends
/// (minijinja's span of `r.http.paths` can start at `.http`).
fn expression_at(source: &str, range: std::ops::Range<usize>) -> Option<String> {
    let end = range.end.min(source.len());
    let mut start = range.start.min(end);
    let path_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '\'' | '"');
    while let Some(c) = source.get(..start).and_then(|s| s.chars().next_back()) {
        if !path_char(c) {
            break;
        }
        start -= c.len_utf8();
    }
    let text = source.get(start..end)?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn line_text(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

fn expr_text(expression: &Option<String>) -> String {
    expression.as_ref().map(|e| format!(" `{e}`")).unwrap_or_default()
}

/// Renders templates over anything that answers lookups ([`Lookup`]): a `SetSnapshot`, typed
/// snapshots, an overlay. Cheap to clone (the environment is shared).
///
/// Templates see `resources` (see the crate docs) and whatever extra context
/// [`render_with`](Self::render_with) passes.
///
/// # Synchronous templates over asynchronous lookups
///
/// minijinja calls its objects synchronously, and on-demand (`CachedStore`) lookups are
/// `async`. [`render`](Self::render) therefore runs the whole template inside
/// `tokio::task::spawn_blocking`, and each lookup the template makes waits on its future with
/// `Handle::block_on` on that blocking thread: an on-demand object is fetched exactly when the
/// template first reads it, the async workers stay free (they run the fetches), and lookups that
/// answer from memory complete on their first poll. Needs a Tokio runtime (either flavour).
#[derive(Clone, Debug)]
pub struct Renderer {
    env: Arc<Environment<'static>>,
    undefined: Undefined,
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer::new(Undefined::default())
    }
}

impl Renderer {
    /// An environment with no templates and the given undefined policy.
    pub fn new(undefined: Undefined) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(match undefined {
            Undefined::Lenient => UndefinedBehavior::Lenient,
            Undefined::Chainable => UndefinedBehavior::Chainable,
            Undefined::Strict => UndefinedBehavior::SemiStrict,
        });
        // Configuration files, not HTML.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_keep_trailing_newline(true);
        // No variable dumps in errors: they would format lazy values (Secrets) into messages.
        env.set_debug(false);
        Renderer { env: Arc::new(env), undefined }
    }

    /// The undefined policy.
    pub fn undefined(&self) -> Undefined {
        self.undefined
    }

    /// Adds (or replaces) a template; a syntax error is a [`RenderError::Template`] with its line.
    pub fn add_template(&mut self, name: impl Into<String>, source: impl Into<String>) -> Result<(), RenderError> {
        let name = name.into();
        Arc::make_mut(&mut self.env)
            .add_template_owned(name.clone(), source.into())
            .map_err(|e| self.template_error(&name, e))
    }

    /// The environment, to add filters, functions or globals.
    ///
    /// ```
    /// use kstore_render::{Renderer, Undefined};
    /// let mut renderer = Renderer::new(Undefined::Lenient);
    /// renderer.environment_mut().add_filter("shout", |s: String| s.to_uppercase());
    /// renderer.add_template("t", "{{ 'hi' | shout }}").unwrap();
    /// ```
    pub fn environment_mut(&mut self) -> &mut Environment<'static> {
        Arc::make_mut(&mut self.env)
    }

    /// Renders `template` with `resources` over `lookup` (see the type's docs for how lookups
    /// run).
    pub async fn render<L: Lookup>(&self, template: &str, lookup: Arc<L>) -> Result<String, RenderError> {
        self.render_with(template, lookup, ()).await
    }

    /// Like [`render`](Self::render), with `extra`'s fields (a map or struct) beside `resources`.
    pub async fn render_with<L: Lookup, S: Serialize>(
        &self,
        template: &str,
        lookup: Arc<L>,
        extra: S,
    ) -> Result<String, RenderError> {
        let this = self.clone();
        let name = template.to_owned();
        let extra = Value::from_serialize(extra);
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || this.render_blocking(&name, lookup, handle, extra))
            .await
            .map_err(|source| RenderError::Task { template: template.to_owned(), source })?
    }

    /// The render itself; runs on a blocking thread (lookups block on `handle`).
    fn render_blocking<L: Lookup>(
        &self,
        template: &str,
        lookup: Arc<L>,
        handle: Handle,
        extra: Value,
    ) -> Result<String, RenderError> {
        let shared = Arc::new(Shared {
            lookup,
            handle,
            strict: self.undefined == Undefined::Strict,
            failures: Mutex::new(Vec::new()),
        });
        let resources = Value::from_object(Resources { shared: shared.clone() });
        let _rendering = RenderingGuard::enter();
        let tmpl = self.env.get_template(template).map_err(|e| self.template_error(template, e))?;
        let ctx = minijinja::context! { resources => resources, ..extra };
        let out = tmpl.render(ctx).map_err(|e| self.template_error(template, e))?;
        let failures = shared.failures.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        if !failures.is_empty() {
            return Err(RenderError::Lookup { template: template.to_owned(), message: failures.join("; ") });
        }
        Ok(out)
    }

    /// A minijinja error with the template, line and expression it points at.
    fn template_error(&self, rendered: &str, e: minijinja::Error) -> RenderError {
        let template = e.name().unwrap_or(rendered).to_owned();
        let expression = e.range().and_then(|range| {
            let tmpl = self.env.get_template(&template).ok()?;
            expression_at(tmpl.source(), range)
        });
        let message = match (e.kind(), e.detail()) {
            (ErrorKind::UndefinedError, None) => "undefined value".to_owned(),
            (kind, Some(detail)) => format!("{kind}: {detail}"),
            (kind, None) => kind.to_string(),
        };
        let message = match std::error::Error::source(&e) {
            Some(cause) => format!("{message}: {cause}"),
            None => message,
        };
        RenderError::Template { template, line: e.line(), expression, message, source: e }
    }
}
