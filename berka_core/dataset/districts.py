"""The 77 real rows of district.asc, which the generator reuses verbatim.

Districts are reference data (demography of the Czech districts), not something to invent, and
shipping them in code keeps the generator free of a data file that packaging would have to carry.
"""

from __future__ import annotations

from berka_core.dataset.converters import Record
from berka_core.dataset.reader import TableReader
from berka_core.dataset.schema import get_table

# Data rows exactly as in district.asc (which has CRLF line ends), header excluded.
DISTRICT_ROWS = """\
1;"Hl.m. Praha";"Prague";1204953;0;0;0;1;1;100.0;12541;0.29;0.43;167;85677;99107
2;"Benesov";"central Bohemia";88884;80;26;6;2;5;46.7;8507;1.67;1.85;132;2159;2674
3;"Beroun";"central Bohemia";75232;55;26;4;1;5;41.7;8980;1.95;2.21;111;2824;2813
4;"Kladno";"central Bohemia";149893;63;29;6;2;6;67.4;9753;4.64;5.05;109;5244;5892
5;"Kolin";"central Bohemia";95616;65;30;4;1;6;51.4;9307;3.85;4.43;118;2616;3040
6;"Kutna Hora";"central Bohemia";77963;60;23;4;2;4;51.5;8546;2.95;4.02;126;2640;3120
7;"Melnik";"central Bohemia";94725;38;28;1;3;6;63.4;9920;2.26;2.87;130;4289;4846
8;"Mlada Boleslav";"central Bohemia";112065;95;19;7;1;8;69.4;11277;1.25;1.44;127;5179;4987
9;"Nymburk";"central Bohemia";81344;61;23;4;2;6;55.3;8899;3.39;3.97;149;2987;2487
10;"Praha - vychod";"central Bohemia";92084;55;29;4;3;5;46.7;10124;0.56;0.54;141;3810;4316
11;"Praha - zapad";"central Bohemia";75637;35;36;9;0;7;36.5;9622;0.45;0.59;154;3475;3529
12;"Pribram";"central Bohemia";107870;84;29;6;1;6;58.0;8754;3.83;4.31;137;3804;3868
13;"Rakovnik";"central Bohemia";53921;61;22;1;1;2;41.3;8598;2.77;3.26;123;1597;1875
14;"Ceske Budejovice";"south Bohemia";177686;69;27;10;1;9;74.8;10045;1.42;1.71;135;6604;6295
15;"Cesky Krumlov";"south Bohemia";58796;22;16;7;1;5;51.9;9045;3.13;3.60;124;1845;1879
16;"Jindrichuv Hradec";"south Bohemia";93931;74;21;10;1;8;56.9;8427;1.12;1.54;107;1874;1913
17;"Pelhrimov";"south Bohemia";74062;99;15;4;2;7;61.4;8114;2.38;2.62;119;1003;1181
18;"Pisek";"south Bohemia";70699;60;13;2;1;4;65.3;8968;2.83;3.35;131;1740;1910
19;"Prachatice";"south Bohemia";51428;50;11;3;1;4;52.7;8402;3.13;3.98;120;999;1099
20;"Strakonice";"south Bohemia";70646;94;14;3;1;4;58.4;8547;2.65;3.64;120;1563;1542
21;"Tabor";"south Bohemia";103347;87;16;7;1;7;67.0;9104;1.51;2.07;123;2299;2354
22;"Domazlice";"west Bohemia";58400;65;16;4;1;6;52.4;8620;1.10;1.25;100;1089;1117
23;"Cheb";"west Bohemia";87419;21;11;4;3;9;85.5;8624;1.79;2.66;102;2879;3198
24;"Karlovy Vary";"west Bohemia";122603;25;21;6;2;8;80.0;8991;1.39;2.01;128;5198;5273
25;"Klatovy";"west Bohemia";88757;60;33;3;2;10;61.7;8554;2.47;2.68;113;1822;2218
26;"Plzen - mesto";"west Bohemia";170449;0;0;0;1;1;100.0;10787;2.64;3.09;131;6041;6261
27;"Plzen - jih";"west Bohemia";67298;71;19;10;0;7;43.8;8561;0.65;1.29;110;1029;1127
28;"Plzen - sever";"west Bohemia";72541;66;26;10;0;8;36.9;8594;1.62;2.01;112;1580;1525
29;"Rokycany";"west Bohemia";45714;52;10;5;1;6;55.6;8843;2.82;3.60;113;818;888
30;"Sokolov";"west Bohemia";94812;15;13;8;2;10;81.8;9650;3.38;3.67;100;2985;2804
31;"Tachov";"west Bohemia";51313;34;12;3;1;4;59.2;8930;3.52;4.20;108;1328;1452
32;"Ceska Lipa";"north Bohemia";105058;32;19;7;2;10;81.0;9272;2.80;3.22;118;4340;4505
33;"Decin";"north Bohemia";133777;24;17;7;3;11;84.7;8705;5.75;7.61;116;4650;4859
34;"Chomutov";"north Bohemia";125236;28;11;1;4;5;87.7;9675;6.43;7.68;100;5323;5190
35;"Jablonec n. Nisou";"north Bohemia";88768;10;18;5;1;7;80.5;8867;1.02;1.21;130;3384;3620
36;"Liberec";"north Bohemia";159617;29;19;8;1;9;85.2;9198;3.33;4.28;131;5796;6132
37;"Litomerice";"north Bohemia";114006;71;26;6;2;9;62.3;9065;4.46;5.39;123;4147;4166
38;"Louny";"north Bohemia";85852;41;23;4;2;4;59.8;8965;7.08;8.23;104;2653;2822
39;"Most";"north Bohemia";119895;17;4;3;2;4;89.9;10446;7.34;9.40;90;4947;4743
40;"Teplice";"north Bohemia";128118;9;16;6;3;8;85.3;9317;6.49;7.07;97;6949;6872
41;"Usti nad Labem";"north Bohemia";118650;8;8;5;1;3;85.6;9832;3.32;4.48;114;6445;5471
42;"Havlickuv Brod";"east Bohemia";95907;87;25;5;2;7;59.1;8388;2.41;2.94;87;1658;1668
43;"Hradec Kralove";"east Bohemia";161854;73;21;6;1;6;76.3;9425;1.72;2.50;125;4085;3891
44;"Chrudim";"east Bohemia";105606;77;26;7;2;7;53.0;8254;2.79;3.76;97;2166;2325
45;"Jicin";"east Bohemia";77917;85;19;6;1;5;53.5;8390;2.28;2.89;132;2080;2122
46;"Nachod";"east Bohemia";112709;48;20;7;3;10;73.5;8369;1.79;2.31;117;2854;2618
47;"Pardubice";"east Bohemia";162580;83;26;5;1;6;72.8;9538;1.51;1.81;111;6079;5410
48;"Rychnov nad Kneznou";"east Bohemia";78955;50;24;8;1;9;59.0;9060;1.78;2.44;124;1655;1717
49;"Semily";"east Bohemia";75685;31;28;5;1;9;60.8;8208;1.89;2.26;155;1660;2123
50;"Svitavy";"east Bohemia";102609;75;33;2;3;6;52.0;8187;4.83;5.45;94;2123;2134
51;"Trutnov";"east Bohemia";121947;37;28;7;3;11;70.5;8541;2.51;2.97;131;3496;3839
52;"Usti nad Orlici";"east Bohemia";139012;59;41;8;3;10;61.9;8363;2.52;3.49;108;2564;2799
53;"Blansko";"south Moravia";107911;88;33;6;2;7;50.9;8240;2.53;3.56;99;1850;1903
54;"Brno - mesto";"south Moravia";387570;0;0;0;1;1;100.0;9897;1.60;1.96;140;18721;18696
55;"Brno - venkov";"south Moravia";157042;49;70;18;0;9;33.9;8743;1.88;2.43;111;3659;3894
56;"Breclav";"south Moravia";124605;11;42;14;1;8;46.0;8772;4.69;4.98;126;2854;3158
57;"Hodonin";"south Moravia";161954;21;37;20;3;8;48.0;8720;3.73;4.50;116;3729;3651
58;"Jihlava";"south Moravia";109164;98;16;6;1;4;63.6;8757;3.38;3.95;96;2212;2471
59;"Kromeriz";"south Moravia";108871;41;29;7;2;6;62.1;8444;3.24;3.47;106;2595;2305
60;"Prostejov";"south Moravia";110643;49;41;4;1;4;51.9;8441;3.45;4.48;115;1879;2252
61;"Trebic";"south Moravia";117897;139;28;5;1;6;53.8;8814;4.76;5.74;107;2112;2059
62;"Uherske Hradiste";"south Moravia";145688;22;41;13;2;5;40.7;8544;1.29;1.86;109;2719;2906
63;"Vyskov";"south Moravia";86513;38;36;5;1;5;50.5;8288;3.79;4.52;110;1562;1460
64;"Zlin";"south Moravia";197099;29;41;10;2;10;74.7;9624;1.60;2.31;145;4484;4265
65;"Znojmo";"south Moravia";114200;101;41;4;1;4;43.7;8403;5.74;5.72;105;2157;2718
66;"Zdar nad Sazavou";"south Moravia";125832;151;41;2;3;5;48.3;8512;3.51;4.12;102;2247;2103
67;"Bruntal";"north Moravia";106054;38;25;6;2;6;63.1;8110;5.77;6.55;109;3244;3079
68;"Frydek - Mistek";"north Moravia";228848;15;40;18;2;6;57.2;9893;4.09;4.72;96;5623;5887
69;"Jesenik";"north Moravia";42821;4;13;5;1;3;48.4;8173;?;7.01;124;?;1358
70;"Karvina";"north Moravia";285387;0;2;8;5;7;89.9;10177;6.63;7.75;81;9878;10108
71;"Novy Jicin";"north Moravia";161227;5;35;11;4;10;69.7;8678;5.93;5.57;102;4980;4595
72;"Olomouc";"north Moravia";226122;32;50;7;4;4;62.6;8994;3.80;4.79;110;9672;9208
73;"Opava";"north Moravia";182027;17;49;12;2;7;56.4;8746;3.33;3.74;90;4355;4433
74;"Ostrava - mesto";"north Moravia";323870;0;0;0;1;1;100.0;10673;4.75;5.44;100;18782;18347
75;"Prerov";"north Moravia";138032;67;30;4;2;5;64.6;8819;5.38;5.66;99;4063;4505
76;"Sumperk";"north Moravia";127369;31;32;13;2;7;51.2;8369;4.73;5.88;107;3736;2807
77;"Vsetin";"north Moravia";148545;8;35;12;3;4;53.5;8909;4.01;5.56;113;3460;3590
"""


def district_records() -> list[Record]:
    """The 77 district records, as the reader gives them for the real district.asc."""
    header = get_table("district").header
    lines = [header + "\r\n"] + [row + "\r\n" for row in DISTRICT_ROWS.splitlines()]
    return list(TableReader(lines, "district", name="district (built in)"))
