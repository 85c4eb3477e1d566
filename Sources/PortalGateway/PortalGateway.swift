// The PortalGateway module.
