"""The published forecast table: building it and writing it atomically."""
