//! The edge worker (see issue 3).
