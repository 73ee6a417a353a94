"""The paper's tables and figures from metrics and histories, and the HTML report's pieces."""
