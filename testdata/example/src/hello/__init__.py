"""The example's code, copied into the image under /root."""

GREETING = "hello from imagespec"
