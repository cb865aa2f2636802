//! Citations on assistant text and the sources they point to.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A citation marker inside assistant text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// Always `"annotation"`.
    #[serde(rename = "type", default)]
    pub kind: AnnotationTag,
    /// What is cited.
    pub source: Source,
    /// Character offset in the text where the marker goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<i64>,
}

/// The constant `type` of an [`Annotation`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnnotationTag {
    /// `"annotation"`.
    #[default]
    #[serde(rename = "annotation")]
    Annotation,
}

/// A cited source: shared fields, then the kind-specific ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Display title.
    pub title: String,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free-form time label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Grouping label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What kind of source this is.
    #[serde(flatten)]
    pub kind: SourceKind,
}

/// The kind-specific part of a [`Source`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceKind {
    /// A web page.
    Url {
        /// Its address.
        url: String,
        /// Attribution text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attribution: Option<String>,
    },
    /// A file.
    File {
        /// The file's name.
        filename: String,
    },
    /// An application entity.
    Entity {
        /// The entity id.
        id: String,
        /// Icon name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        icon: Option<String>,
        /// Label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// Inline label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inline_label: Option<String>,
        /// Whether the client may interact with it.
        #[serde(default)]
        interactive: bool,
        /// Free-form data.
        #[serde(default)]
        data: Map<String, Value>,
        /// Deprecated preview mode, passed through.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preview: Option<String>,
    },
}
