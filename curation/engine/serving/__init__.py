"""Serving models on this machine: the embedded GGUF model (assembled from data packages and
served by llama.cpp, built for this CPU), its supervisor, its status file, and a small
OpenAI-compatible server for a local Hugging Face checkpoint. Plain Python, no Django."""
