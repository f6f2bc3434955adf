"""What a page shows, from plain rows: the paper's statistics and agreement figures, inline SVG
plots, and model text rendered as sanitized Markdown and highlighted code."""
