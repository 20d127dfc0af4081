"""Compare: one chat request run on several models side by side (POST /v1/compare, the admin's
compare page), each model's run a chat completion of its own, billed under a shared comparison id."""
