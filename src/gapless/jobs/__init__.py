"""Job runners: where a reply's generation runs (`inline` in this process, or a queue)."""
