"""Fake but well-formed names and personal data (names, CNIC numbers, phones, factory names).

Personal attributes are a pure function of (seed, person number), so a person who attends several
sessions keeps the same name, CNIC and phone without the generator remembering them.
"""

from __future__ import annotations

MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): fast, deterministic across runs and machines."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & MASK)) & MASK
        h = (h + 0x9E3779B97F4A7C15) & MASK
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & MASK
        h ^= h >> 31
    return h


FEMALE_NAMES = (
    "Ayesha Aisha Fatima Zainab Maryam Sana Hina Saima Nadia Rabia Amna Iqra Sadia Samina Shazia "
    "Bushra Farah Kiran Asma Noreen Rukhsana Naseem Shabnam Tahira Uzma Sobia Mehwish Anam Nazia "
    "Razia Parveen Shumaila Sidra Huma Lubna Yasmin Kausar Robina Nasreen Abida"
).split()
MALE_NAMES = (
    "Muhammad Ahmed Ali Hassan Hussain Bilal Usman Imran Asif Tariq Kamran Faisal Waqas Adnan "
    "Shahid Zubair Naveed Irfan Junaid Sohail Kashif Rashid Arshad Javed Nadeem Sajid Zahid Khalid "
    "Abdul Rehman Farhan Hamza Umar Saad Danish Rizwan Yasir Salman Babar Aamir"
).split()
SURNAMES = (
    "Khan Ahmed Ali Hussain Shah Qureshi Malik Butt Chaudhry Sheikh Baig Mirza Abbasi Siddiqui "
    "Rajput Awan Bhatti Jatoi Memon Soomro Baloch Khattak Yousafzai Ansari Hashmi Zaidi Rizvi "
    "Naqvi Javed Iqbal Akhtar Raza Mughal Gill Dogar Cheema Warraich Arain Lodhi Niazi"
).split()

# CNIC numbers start with the district of registration.
CNIC_DISTRICT = {
    "Karachi": ("42101", "42201", "42301", "42401"),
    "Lahore": ("35201", "35202"),
    "Faisalabad": ("33100", "33102", "33104"),
}

CITIES = (  # (city, province, share of factories)
    ("Karachi", "Sindh", 0.46),
    ("Lahore", "Punjab", 0.34),
    ("Faisalabad", "Punjab", 0.20),
)
INDUSTRIAL_AREAS = {
    "Karachi": (
        "Korangi Industrial Area",
        "S.I.T.E. Area",
        "Federal B Industrial Area",
        "North Karachi Industrial Area",
        "Landhi Industrial Area",
    ),
    "Lahore": (
        "Sundar Industrial Estate",
        "Quaid-e-Azam Industrial Estate",
        "Kot Lakhpat",
        "Raiwind Road",
        "Multan Road",
    ),
    "Faisalabad": ("M-3 Industrial City", "Sargodha Road", "Jhang Road", "Khurrianwala", "Satiana Road"),
}
_EN_PREFIX = (
    "Indus Ravi Chenab Jhelum Margalla Shalimar Mehran Noor Falcon Crown Evergreen Sunrise Orient "
    "Royal Zenith Summit Pioneer Unity Liberty Lotus Emerald Sapphire-Line Silverline Bluewater "
    "Greenfield Citystar Goldthread Fineknit Starlight Horizon"
).split()
_EN_KIND = ("Knitwear", "Garments", "Apparel", "Textiles", "Fashions", "Denim", "Hosiery", "Sportswear")
_UR_PREFIX = ("کراچی", "لاہور", "فیصل آباد", "النور", "سٹار", "گلشن", "پاک", "مہران", "راوی", "سندھ")
_UR_KIND = ("گارمنٹس", "ٹیکسٹائل ملز", "نٹ ویئر", "اپیرل", "انڈسٹریز", "فیبرکس")

BRANDS = (
    "Northwind Apparel",
    "Bluefin Outfitters",
    "Maple & Moss",
    "Harbor Lane",
    "Cobalt Sportswear",
    "Lindenfield",
    "Azura Denim",
    "True North Basics",
    "Sable & Stone",
    "Orchard Kids",
    "Polar Peak Outdoor",
    "Vela Activewear",
    "Meridian Home",
    "Kestrel Workwear",
    "Juniper Street",
    "Solstice Swim",
    "Granite Footwear",
    "Aurora Knit Co.",
    "Fjord & Field",
)


def factory_name(seed: int, factory_id: int, urdu: bool) -> str:
    h = mix(seed, factory_id, 11)
    if urdu:
        return f"{_UR_PREFIX[h % len(_UR_PREFIX)]} {_UR_KIND[(h >> 8) % len(_UR_KIND)]}"
    prefix = _EN_PREFIX[h % len(_EN_PREFIX)]
    kind = _EN_KIND[(h >> 8) % len(_EN_KIND)]
    return f"{prefix} {kind} (Pvt) Ltd"


def person(seed: int, person_no: int, gender: int, city: str) -> tuple[str, str, str]:
    """(full name, CNIC, phone) of a person; gender 0 male, 1 female, 2 other."""
    h = mix(seed, person_no, 23)
    first = (FEMALE_NAMES if gender == 1 else MALE_NAMES)[h % 40]
    last = SURNAMES[(h >> 8) % len(SURNAMES)]
    districts = CNIC_DISTRICT.get(city, ("35202",))
    district = districts[(h >> 16) % len(districts)]
    middle = (h >> 20) % 10_000_000
    # The CNIC's last digit is odd for men and even for women.
    last_digit = ((h >> 44) % 5) * 2 + (0 if gender == 1 else 1)
    h2 = mix(h, 5)
    phone = f"+92 3{h2 % 50:02d} {(h2 >> 8) % 10_000_000:07d}"
    return f"{first} {last}", f"{district}-{middle:07d}-{last_digit}", phone


def os_id(seed: int, factory_id: int, year: int) -> str:
    """An Open Supply Hub-like id: PK, year, day of year, five letters, a check digit."""
    h = mix(seed, factory_id, 31)
    letters = "".join(chr(65 + (h >> (5 * i)) % 26) for i in range(5))
    return f"PK{year}{1 + (h >> 30) % 365:03d}{letters}{(h >> 40) % 10}"
