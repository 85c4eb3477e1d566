// The GatewaySandbox module.
