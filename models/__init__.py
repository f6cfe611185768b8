"""The data and the business rules on it."""
