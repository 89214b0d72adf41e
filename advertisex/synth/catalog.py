"""Static vocabularies the synthetic world draws from: browsers, crawlers, countries, sites.

Pure data, no randomness. Lists (never sets) so that index-based sampling with a seeded
generator gives the same strings on every run and every Python version.
"""

from __future__ import annotations

DEVICE_TYPES = ["desktop", "mobile", "tablet", "ctv"]
DEVICE_SHARE = [0.40, 0.46, 0.09, 0.05]

# Realistic user agents per device type, indexed like DEVICE_TYPES.
USER_AGENTS: list[list[str]] = [
    [  # desktop
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4.1 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/123.0.0.0 Safari/537.36",
    ],
    [  # mobile
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.82 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.82 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_7_7 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    ],
    [  # tablet
        "Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.82 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; Lenovo TB-J616F) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/123.0.6312.99 Safari/537.36",
    ],
    [  # ctv
        "Roku/DVP-13.0 (13.0.0.4161-46)",
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "7.0 TV Safari/537.36",
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/87.0.4280.88 Safari/537.36 WebAppManager",
        "AppleTV14,1/17.4 (tvOS; 21L227)",
    ],
]

# Well-known crawler and automation user agents. Bots are valid records: the IVT filter,
# not validation, is what removes them, so they must look like ordinary impressions.
BOT_USER_AGENTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/124.0.6367.60 Safari/537.36",
    "python-requests/2.31.0",
]
GOOGLEBOT_UA_INDEX = 0

COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "AU", "ES", "IT", "MX"]
COUNTRY_SHARE = [0.35, 0.08, 0.08, 0.06, 0.12, 0.07, 0.06, 0.05, 0.04, 0.04, 0.03, 0.02]

# First octets of publicly routed IPv4 space, so generated addresses look like real clients.
# fmt: off
PUBLIC_FIRST_OCTETS = [
    23, 24, 31, 37, 45, 50, 62, 68, 73, 78, 81, 86, 92, 98, 103, 110, 122, 151, 176, 185, 188,
    193, 201, 212, 217,
]
# fmt: on

# (host stem, URL path segment) per site category; five sites each make ~50 websites.
SITE_CATEGORIES = [
    ("news-site", "article"),
    ("sports-hub", "match"),
    ("tech-daily", "review"),
    ("recipe-box", "recipe"),
    ("travel-notes", "guide"),
    ("finance-now", "markets"),
    ("game-zone", "news"),
    ("health-guide", "topic"),
    ("auto-review", "model"),
    ("style-mag", "story"),
]
SITES_PER_CATEGORY = 5

EXCHANGES = ["adx", "openx", "pubmatic", "magnite"]
EXCHANGE_SHARE = [0.40, 0.20, 0.22, 0.18]

PLACEMENTS = ["banner_top", "sidebar", "in_feed", "interstitial", "video_preroll"]
# Creative formats and the placements/sizes they can serve.
FORMATS = ["banner", "native", "video"]
FORMAT_SHARE = [0.6, 0.25, 0.15]
FORMAT_PLACEMENTS = {"banner": [0, 1, 3], "native": [2], "video": [4]}
FORMAT_SIZES = {
    "banner": ["300x250", "728x90", "320x50", "160x600", "300x600"],
    "native": ["1200x627", "600x600"],
    "video": ["1920x1080", "640x360"],
}

AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
AGE_SHARE = [0.16, 0.27, 0.22, 0.16, 0.11, 0.08]
GENDERS = ["female", "male", "unknown"]
GENDER_SHARE = [0.47, 0.46, 0.07]
# fmt: off
INTERESTS = [
    "sports", "tech", "travel", "finance", "food", "fashion",
    "gaming", "auto", "health", "music", "news", "parenting",
]
# fmt: on

# fmt: off
ADVERTISERS = [
    "Acme Outdoor", "Northwind Travel", "Blue Harbor Bank", "Lumen Phones",
    "Fresh Basket Groceries", "Kestrel Motors", "Pixel Forge Games", "Evergreen Insurance",
    "Solace Sleep", "Brightpath Learning", "Urban Thread Apparel", "Helio Energy",
    "Nimbus Cloud", "Cedar and Sage Home",
]
# fmt: on
# Campaign themes and the conversion each one mostly drives.
THEMES = [
    ("Spring Sale", "purchase"),
    ("Brand Awareness", "signup"),
    ("App Install Push", "install"),
    ("Retargeting", "purchase"),
    ("Holiday Promo", "purchase"),
    ("Lead Gen", "lead"),
    ("New Launch", "other"),
]
CONVERSION_TYPES = ["signup", "purchase", "install", "lead", "other"]
CURRENCIES = ["USD", "EUR", "GBP"]
CURRENCY_SHARE = [0.8, 0.12, 0.08]
