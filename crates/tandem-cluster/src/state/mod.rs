//! placeholder for the state author
