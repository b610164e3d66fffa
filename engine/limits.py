"""Every limit of the inventory core, as a named constant with its unit last.

The gateway validates requests against these same constants, so a request the core would refuse never
reaches an actor.
"""

hold_ttl_s_min = 1
hold_ttl_s_max = 3_600
seats_per_hold_max = 100
quantity_per_hold_max = 100
max_tickets_per_buyer_max = 100
seats_per_event_max = 100_000
ga_capacity_max = 1_000_000
price_minor_max = 10**12
ticket_types_per_event_max = 20
sections_per_event_max = 200
rows_per_section_max = 500
seats_per_row_max = 1_000
batch_commands_max = 4_096
expire_batch_holds_max = 1_024
idempotency_records_max = 65_536
id_chars_max = 128
name_chars_max = 200
label_chars_max = 32
# What an event takes when its creator does not say (POST /v1/events needs only name, starts_at, ticket_types).
hold_ttl_s_default = 600
max_tickets_per_buyer_default = 10
