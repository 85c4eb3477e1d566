// The FeeReconStore module.
