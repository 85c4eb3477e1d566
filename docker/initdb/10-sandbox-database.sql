-- The gateway sandbox keeps its own truth in its own database, never the service's.
CREATE DATABASE feerecon_sandbox;
