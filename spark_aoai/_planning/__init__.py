"""What to send for a row: operations, templates, structured output, packing, tasks, token estimates."""
