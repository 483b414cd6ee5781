"""Orders: request schemas, validation, intake of tasks, the order mirror and the HTTP controllers."""
