"""TFLite conversion and inspection of converted files."""
