"""The Streamlit GUI: the script, shared widgets and one module per mode."""
