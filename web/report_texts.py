"""The reports page's words in German and English (merged into :data:`web.i18n.TEXTS`)."""

from __future__ import annotations

REPORT_TEXTS: dict[str, tuple[str, str]] = {
    "reports": ("Berichte", "Reports"),
    "report_title": ("Reaktionszeiten", "Speed to lead"),
    "report_intro": (
        "Wie schnell Leads persönlich beantwortet wurden (eine Antwort eines Verkäufers, oder der "
        "Abschluss mit einem Grund, der sagt, dass der Kunde erreicht wurde), in Arbeitszeit des "
        "Autohauses. Die automatische Antwort zählt nicht.",
        "How fast leads got a personal answer (a seller's reply, or completing them with a reason "
        "that says the customer was reached), in the dealer's working time. The autoresponse "
        "does not count.",
    ),
    "report_scope_team": ("Ihr Team und der Pool", "Your team and the pool"),
    "report_scope_dealer": ("Das ganze Autohaus", "The whole dealership"),
    "period": ("Zeitraum", "Period"),
    "period_from": ("Von", "From"),
    "period_to": ("Bis", "To"),
    "last_7_days": ("Letzte 7 Tage", "Last 7 days"),
    "last_30_days": ("Letzte 30 Tage", "Last 30 days"),
    "last_90_days": ("Letzte 90 Tage", "Last 90 days"),
    "this_month": ("Dieser Monat", "This month"),
    "last_month": ("Letzter Monat", "Last month"),
    "compared_with": ("Vergleich mit {first} – {last}", "Compared with {first} – {last}"),
    "previous_value": ("vorher {value}", "before {value}"),
    "answered_share": ("Beantwortet", "Answered"),
    "within_stage1": ("In Stufe 1", "Within stage 1"),
    "never_answered": ("Nie beantwortet", "Never answered"),
    "median_answer": ("Median erste Antwort", "Median first answer"),
    "p90_answer": ("90 % binnen", "90% within"),
    "escalated": ("Eskaliert (Stufe 1 / 2)", "Escalated (stage 1 / 2)"),
    "completed_leads": ("Abgeschlossen", "Completed"),
    "chart_distribution": (
        "Zeit bis zur ersten Antwort (Arbeitszeit)",
        "Time to the first answer (working time)",
    ),
    "chart_per_day": ("Leads pro Tag nach Quelle", "Leads per day by source"),
    "chart_shares": ("Beantwortet je Verkäufer", "Answered share per seller"),
    "bucket_never": ("nie", "never"),
    "bucket_more": ("> 24 h", "> 24 h"),
    "by_seller": ("Nach Verkäufer", "By seller"),
    "by_source": ("Nach Quelle", "By source"),
    "by_type": ("Nach Anfrageart", "By lead type"),
    "by_week": ("Nach Woche", "By week"),
    "seller": ("Verkäufer", "Seller"),
    "week": ("Woche", "Week"),
    "no_source": ("ohne Quelle", "no source"),
    "print": ("Drucken", "Print"),
    "no_report_leads": ("Keine Leads in diesem Zeitraum.", "No leads in this period."),
    "bad_period": (
        "Der Zeitraum ist ungültig; gezeigt werden die letzten 30 Tage.",
        "The period is not valid; showing the last 30 days.",
    ),
    "weekly_summary": ("Wochenbericht per E-Mail", "Weekly summary by email"),
    "weekly_summary_hint": (
        "Am ersten Arbeitstag der Woche: die Reaktionszeiten der Vorwoche und die am längsten "
        "unbeantworteten Leads.",
        "On the first working day of the week: last week's response times and the leads waiting "
        "longest for an answer.",
    ),
    "weekly_summary_on": ("Ja, zusenden", "Yes, send it"),
    "weekly_summary_off": ("Nein, danke", "No, thanks"),
    "webhooks": ("Webhooks", "Webhooks"),
    "webhook_dead": ("Tote Webhook-Zustellungen", "Dead webhook deliveries"),
}
