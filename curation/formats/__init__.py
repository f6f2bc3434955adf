"""What files look like: problem files (import), trajectory records (token and chat exports),
review rows (CSV and JSONL). Parsing and writing only; workflows call these from services."""
