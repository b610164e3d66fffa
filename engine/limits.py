"""Every limit of the inventory core, as a named constant with its unit last.

The gateway validates requests against these same constants, so a request the core would refuse never
reaches an actor.
"""

hold_ttl_s_min = 1
hold_ttl_s_max = 3_600
# how long checkout may keep a hold alive for its payment (ExtendHold.ttl_s): 30 min, whatever the event's hold_ttl_s
payment_window_s_max = 1_800
seats_per_hold_max = 100
quantity_per_hold_max = 100
# tickets one CancelTickets gives back: a sale has at most one hold's tickets
tickets_per_cancel_max = max(seats_per_hold_max, quantity_per_hold_max)
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
# venues and seating layouts (engine/catalog/layouts.py)
layout_seats_max = 100_000
zones_per_layout_max = 50
seat_number_max = 9_999_999  # seat ids carry the number in at most 7 digits
layout_coordinate_abs_max = 1_000_000.0  # x and y, in the layout's drawing units
layout_problems_reported_max = 100
# catalog lifecycle: presales on an event (engine/catalog/presales.py)
presales_per_event_max = 10
presale_buyer_ids_max = 10_000
best_available_filters_max = 512  # (zone, attributes) indexes one inventory keeps for best-available holds
best_available_fallback_zones_max = 8  # zones a best-available hold may fall back to, in order, after its own
# What an event takes when its creator does not say (POST /v1/events needs only name, starts_at, ticket_types).
hold_ttl_s_default = 600
max_tickets_per_buyer_default = 10
