//! placeholder for the raft author
