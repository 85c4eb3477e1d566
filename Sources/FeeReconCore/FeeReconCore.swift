// The FeeReconCore module.
