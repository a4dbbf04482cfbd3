"""Provider adapters: each turns one provider's own API into the platform's partner events."""
