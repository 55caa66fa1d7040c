//! How a stream holds its model: borrowed (the plain `Model::stream`) or shared through an
//! [`Arc`] (`Model::stream_shared`, for a stream that must own its model, as a Python object
//! does). Both read the same model; the stream behaves the same either way.

use std::ops::Deref;
use std::sync::Arc;

pub(crate) enum Handle<'m, M> {
    Borrowed(&'m M),
    Shared(Arc<M>),
}

impl<M> Clone for Handle<'_, M> {
    fn clone(&self) -> Self {
        match self {
            Handle::Borrowed(m) => Handle::Borrowed(m),
            Handle::Shared(m) => Handle::Shared(Arc::clone(m)),
        }
    }
}

impl<M> Deref for Handle<'_, M> {
    type Target = M;

    fn deref(&self) -> &M {
        match self {
            Handle::Borrowed(m) => m,
            Handle::Shared(m) => m,
        }
    }
}
