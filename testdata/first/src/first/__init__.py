"""The code copied into the first image (under /root)."""
import yaml

GREETING = yaml.safe_load("greeting: hello from your first image")["greeting"]
