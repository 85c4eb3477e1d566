// The FeeReconServer module.
