"""Function views, one module per screen family; each opens with its permission check."""
