// The Signing module.
